/* C callers for jitffi closures on AArch64 (tests/closure_aarch64.rs).
 *
 * Each caller takes a function pointer of one C type, calls it with fixed
 * argument values, and returns or stores what came back. gcc compiles the
 * calls (AAPCS64, as Linux uses it), so the closure sees exactly what a C
 * caller passes. The argument values are repeated in the Rust test as
 * expected bytes.
 *
 * The `apple_` callers emulate Apple arm64 callers with AAPCS64 calls whose
 * register and stack words are laid out by hand as Apple's "Writing ARM64
 * code for Apple platforms" says (stack arguments packed by natural
 * alignment; variadic arguments all on the stack in 8-byte slots). */

#include <stdint.h>
#include <string.h>

typedef long long ll;
typedef struct { float x, y, z; } v3;                 /* HFA of 3 floats */
typedef struct { double a, b, c, d; } d4;             /* case 6 */
typedef struct { double a, b, c, d, e; } d5;          /* case 7 */
typedef struct { ll a, b, c; } ll3;                   /* case 8 */
typedef struct { float a, b; int c; } s_ffi;          /* case 1/2 */
typedef struct { float a; double b; } s_fd;           /* case 9 */
typedef struct __attribute__((packed)) { char c; int i; } s_packed; /* case 10 */
typedef union { double d; float f[2]; } u_df;         /* case 13 */
typedef struct { struct { float a, b; } p; float c[2]; } s_nest; /* case 14 */
typedef struct { double a, b, c; } d3;                /* case 19 */
typedef struct { ll a, b; } ll2;                      /* case 20 */
typedef struct { char a, b, c; } c3;                  /* 3-byte composite */
typedef struct { unsigned char b[40]; } blob40;       /* by reference */

void call_hfa3(v3 (*f)(v3, d4), v3 *out) {
    v3 p = { 1.5f, -2.25f, 3.0f };
    d4 q = { 10.5, 20.25, -30.125, 40.0 };
    *out = f(p, q);
}

void call_hfa4(d4 (*f)(d4), d4 *out) {
    d4 q = { 1.0, 2.0, 3.0, 4.5 };
    *out = f(q);
}

void call_nest(s_nest (*f)(s_nest), s_nest *out) {
    s_nest s = { { 0.5f, 1.5f }, { 2.5f, -3.5f } };
    *out = f(s);
}

void call_big5(d5 (*f)(d5, int), d5 *out, d5 *arg_after) {
    d5 p = { 1.25, 2.5, 3.75, 5.0, 6.25 };
    *out = f(p, -7);
    *arg_after = p; /* the callee may only write its copy */
}

void call_ll3(ll3 (*f)(int), ll3 *out) { *out = f(41); }

void call_i128(__int128 (*f)(__int128, int, __int128), __int128 *out) {
    __int128 a = ((__int128)0x0123456789abcdefLL << 64) | 0xfedcba9876543210ULL;
    __int128 b = -((__int128)5 << 70);
    *out = f(a, 3, b);
}

/* case 22: int then __int128 in x2:x3 (x1 skipped). */
void call_i128_skip(__int128 (*f)(int, __int128), __int128 *out) {
    *out = f(9, ((__int128)7 << 64) | 11);
}

double call_ld(long double (*f)(long double, int, long double)) {
    return (double)f(1.25L, 5, -2.5L);
}

ll call_spill(ll (*f)(ll, ll, ll, ll, ll, ll, ll, ll, char, short, int, char)) {
    return f(1, -2, 3, -4, 5, -6, 7, 0x7fffffffffffffffLL, (char)200, -1234, 0x12345678,
             'z');
}

/* case 25: d0 and w1 on Linux. */
int call_var25(int (*f)(int, ...)) { return f(2, 2.5, 3); }

/* variadic doubles beyond the named one, and an int after them */
double call_vard(double (*f)(int, ...)) { return f(4, 1.5, -2.5, 3.25, 100); }

void call_ffi(s_ffi (*f)(s_ffi, int), s_ffi *out) {
    s_ffi s = { 1.25f, -2.5f, 77 };
    *out = f(s, 9);
}

void call_fd(s_fd (*f)(s_fd), s_fd *out) {
    s_fd s = { 0.75f, -8.5 };
    *out = f(s);
}

void call_packed(s_packed (*f)(s_packed, int), s_packed *out) {
    s_packed s = { 'q', -123456 };
    *out = f(s, 5);
}

void call_udf(u_df (*f)(u_df), u_df *out) {
    u_df u;
    u.d = 6.5;
    *out = f(u);
}

void call_c3(c3 (*f)(c3, int), c3 *out) {
    c3 s = { 'a', 'b', 'c' };
    *out = f(s, 12);
}

/* case 19: six doubles, an HFA of three on the stack, a double on the
   stack too (no back-fill). */
double call_nbf(double (*f)(double, double, double, double, double, double, d3, double)) {
    d3 s = { 7.5, 8.5, 9.5 };
    return f(1, 2, 3, 4, 5, 6, s, 10.25);
}

/* case 20: seven ll, struct {ll a,b} (stack, not split), ll. */
ll call_ns(ll (*f)(ll, ll, ll, ll, ll, ll, ll, ll2, ll)) {
    ll2 s = { 0x1111111111LL, -0x2222222222LL };
    return f(1, 2, 3, 4, 5, 6, 7, s, 99);
}

/* Large composites by reference: one in x0, one whose address goes on the
   stack after eight integer arguments. */
int call_blobs(int (*f)(blob40, ll, ll, ll, ll, ll, ll, ll, blob40)) {
    blob40 a, b;
    for (int i = 0; i < 40; i++) {
        a.b[i] = (unsigned char)(i + 1);
        b.b[i] = (unsigned char)(200 - i);
    }
    return f(a, 2, 3, 4, 5, 6, 7, 8, b);
}

/* case 28 */
void call_cd(_Complex double (*f)(_Complex double), double *out) {
    _Complex double z = 1.5 + 2.5 * __builtin_complex(0.0, 1.0);
    _Complex double r = f(z);
    out[0] = __real__ r;
    out[1] = __imag__ r;
}

/* Narrow arguments and results (AAPCS64: the callee of a narrow result
   leaves the upper bits unspecified; the caller extends). */
int call_narrow(int (*f)(signed char, unsigned short, _Bool)) { return f(-5, 65000, 1); }
int call_ret_schar(signed char (*f)(int)) { return f(1); }
int call_ret_ushort(unsigned short (*f)(int)) { return f(2); }
int call_ret_bool(_Bool (*f)(int)) { return f(3); }

/* A register-and-stack mix of floats. */
float call_floats(float (*f)(float, double, float, double, float, double, float, double,
                             float, double)) {
    return f(1.5f, 2.5, 3.5f, 4.5, 5.5f, 6.5, 7.5f, 8.5, 9.5f, 10.5);
}

int call_void(int (*f)(void)) { return f(); }
int call_ii(int (*f)(int, int)) { return f(7, -3); }
int call_stack3(int (*f)(int, int, int, int, int, int, int, int, int, int, int)) {
    return f(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
}

/* ---- Apple arm64 emulation ---- */

/* Case 24 for an Apple callee `ll f(ll x8, char, short, int, char)`: the
   eight ll in x0-x7, then the stack packed by natural alignment: char at 0,
   short at 2, int at 4, char at 8. */
ll apple_call_spill(ll (*f)(ll, ll, ll, ll, ll, ll, ll, ll, uint64_t, uint64_t)) {
    unsigned char c = 200;
    short s = -1234;
    int i = 0x12345678;
    unsigned char d = 'z';
    uint64_t w0 = (uint64_t)c | ((uint64_t)(uint16_t)s << 16) | ((uint64_t)(uint32_t)i << 32);
    uint64_t w1 = d;
    return f(1, -2, 3, -4, 5, -6, 7, 0x7fffffffffffffffLL, w0, w1);
}

/* Case 25 for an Apple callee `int f(int, ...)` called with (2.5, 3): the
   named int in w0; both variadic arguments on the stack in 8-byte slots
   (2.5 at 0, 3 at 8), none in registers. x1-x7 hold junk the callee must
   ignore. */
int apple_call_var25(int (*f)(int, ll, ll, ll, ll, ll, ll, ll, uint64_t, uint64_t)) {
    double x = 2.5;
    uint64_t bits;
    memcpy(&bits, &x, 8);
    return f(2, -1, -1, -1, -1, -1, -1, -1, bits, 3);
}

/* An Apple callee returning `signed char` extends it to 32 bits: read w0
   as an int. */
int apple_call_ret_schar(int (*f)(int)) { return f(1); }
int apple_call_ret_ushort(int (*f)(int)) { return f(2); }
