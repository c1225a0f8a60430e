/* C callers for jitffi closures (tests/closure_x86.rs).
 *
 * Each caller takes a function pointer of one C type, calls it with fixed
 * argument values, and returns or stores what came back. The callers are
 * ordinary SysV functions; the `w_` twins take pointers to
 * __attribute__((ms_abi)) functions, so gcc emits Win64 calls to them. */

#include <stdint.h>
#include <string.h>

#define MS __attribute__((ms_abi))

typedef struct { float a, b; int c; } s_ffi;          /* tricky case 1/2 */
typedef struct { double d; char c[8]; } s_dc;         /* tricky case 5 */
typedef struct { long long a, b, c, d; } s_big;       /* 32 bytes: MEMORY */
typedef struct { float x, y; } s_v2;                  /* tricky case 3 */
typedef struct { char a, b, c; } s_c3;                /* tricky case 11 */

/* ---- SysV callers ---- */

int call_ii(int (*f)(int, int)) { return f(7, -3); }

int call_narrow(int (*f)(signed char, unsigned short, _Bool)) {
    return f(-5, 65000, 1);
}

/* Narrow results: the caller widens them itself, so the values seen here
 * are exactly the low bits the closure returned. */
int call_ret_schar(signed char (*f)(int)) { return f(1); }
int call_ret_ushort(unsigned short (*f)(int)) { return f(2); }
int call_ret_bool(_Bool (*f)(int)) { return f(3); }

double call_mix(double (*f)(float, double, int, float, double)) {
    return f(1.5f, 2.25, 3, 4.5f, -0.125);
}

float call_retf(float (*f)(double, float)) { return f(0.5, 8.0f); }

/* Eleven integer-class and eleven float arguments: the last five integers
 * and last three doubles go on the stack (psABI 3.2.3: 6 GPRs, 8 XMMs). */
long long call_many(long long (*f)(int, long long, double, int, float, long long,
                                   double, int, double, long long, double, int,
                                   float, double, int, double, long long, double,
                                   signed char, double, short, double)) {
    return f(1, 2, 3.5, 4, 5.5f, 6, 7.5, 8, 9.5, 10, 11.5, 12, 13.5f, 14.5, 15,
             16.5, 17, 18.5, -19, 20.5, -21, 22.5);
}

void call_ffi(s_ffi (*f)(s_ffi, int), s_ffi *out) {
    s_ffi s = {1.25f, -2.5f, 77};
    *out = f(s, 9);
}

void call_dc(s_dc (*f)(s_dc, int), s_dc *out) {
    s_dc s = {3.25, {'a', 'b', 'c', 'd', 'e', 'f', 'g', 0}};
    *out = f(s, -4);
}

void call_big(s_big (*f)(int, s_big, s_big), s_big *out) {
    s_big x = {1, -2, 3, -4}, y = {50, 60, 70, 80};
    *out = f(5, x, y);
}

void call_i128(__int128 (*f)(__int128, __int128), __int128 *out) {
    __int128 a = ((__int128)0x0123456789abcdefLL << 64) | 0xfedcba9876543210ULL;
    __int128 b = -((__int128)3 << 70);
    *out = f(a, b);
}

double call_ld(long double (*f)(long double, int, long double)) {
    return (double)f(1.25L, 3, -2.5L);
}

void call_cd(_Complex double (*f)(_Complex double), double *out) {
    _Complex double z = 1.5 + 2.5 * __builtin_complex(0.0, 1.0);
    _Complex double r = f(z);
    out[0] = __real__ r;
    out[1] = __imag__ r;
}

int call_var(int (*f)(int, ...)) { return f(3, 2.5, 7); }

/* Five stack arguments (odd count) and none: alignment at the handler. */
int call_stack5(int (*f)(int, int, int, int, int, int, int, int, int, int, int)) {
    return f(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
}
int call_void(int (*f)(void)) { return f(); }

/* ---- Win64 callers (ms_abi function pointers) ---- */

int w_call_ii(int (MS *f)(int, int)) { return f(7, -3); }

int w_call_narrow(int (MS *f)(signed char, unsigned short, _Bool)) {
    return f(-5, 65000, 1);
}

/* Tricky case 23: rcx, xmm1, r8, xmm3, [rsp+32], [rsp+40]. */
double w_call_mix(double (MS *f)(int, double, int, double, int, double)) {
    return f(1, 2.5, 3, 4.5, 5, 6.5);
}

long long w_call_many(long long (MS *f)(int, long long, double, int, float, long long,
                                       double, int, double, long long)) {
    return f(1, 2, 3.5, 4, 5.5f, 6, 7.5, 8, 9.5, 10);
}

/* 12-byte struct: by reference (a copy's address in rcx). */
int w_call_ffi(int (MS *f)(s_ffi, int)) {
    s_ffi s = {1.25f, -2.5f, 77};
    return f(s, 9);
}

/* Tricky case 11: 3-byte struct by reference, then an int in edx. */
int w_call_c3(int (MS *f)(s_c3, int)) {
    s_c3 s = {'x', 'y', 'z'};
    return f(s, 42);
}

/* Tricky case 3: 8-byte struct in rcx, returned in rax. */
void w_call_v2(s_v2 (MS *f)(s_v2), s_v2 *out) {
    s_v2 v = {0.5f, -1.5f};
    *out = f(v);
}

/* 32-byte result through the hidden pointer in rcx; ints in edx, r8d. */
void w_call_big(s_big (MS *f)(int, int), s_big *out) { *out = f(11, 22); }

/* Tricky case 25: the double in xmm1 and rdx, then the int in r8d. */
int w_call_var(int (MS *f)(int, ...)) { return f(3, 2.5, 7); }

/* ---- more stack cases (DESIGN tricky cases 17, 18, 21, 4, 10) ---- */

typedef struct { long long a; double b; } s_ld2;
typedef struct { double a, b; } s_dd;
typedef struct { float x, y, z; } s_v3;
typedef struct __attribute__((packed)) { char c; int i; } s_packed;

/* 17: six ll fill the GPRs; the struct goes whole on the stack; the double
 * still takes xmm0 and the last ll the stack. */
long long call_case17(long long (*f)(long long, long long, long long, long long,
                                     long long, long long, s_ld2, double, long long)) {
    s_ld2 s = {-8, 9.75};
    return f(1, 2, 3, 4, 5, 6, s, 10.5, 11);
}

/* 18: seven doubles, then the struct on the stack, last double in xmm7. */
double call_case18(double (*f)(double, double, double, double, double, double,
                               double, s_dd, double)) {
    s_dd s = {8.25, -9.5};
    return f(1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, s, 10.25);
}

/* 21: five ll, __int128 on the stack (16-aligned), last ll in r9. */
long long call_case21(long long (*f)(long long, long long, long long, long long,
                                     long long, __int128, long long)) {
    __int128 x = ((__int128)0x1234 << 64) | 0x5678;
    return f(1, 2, 3, 4, 5, x, 7);
}

/* 4: struct {float x,y,z} in xmm0 + xmm1, out the same. */
void call_v3(s_v3 (*f)(s_v3), s_v3 *out) {
    s_v3 v = {1.0f, 2.0f, 3.0f};
    *out = f(v);
}

/* 10: packed 5-byte struct: MEMORY class, on the stack. */
int call_packed(int (*f)(s_packed, int)) {
    s_packed p = {'q', 0x01020304};
    return f(p, 6);
}

/* _Complex long double result: st0 (real) and st1 (imaginary). */
void call_cld(_Complex long double (*f)(int), double *out) {
    _Complex long double r = f(5);
    out[0] = (double)__real__ r;
    out[1] = (double)__imag__ r;
}

/* Win64: _Complex double (16 bytes) by reference, result via hidden pointer. */
void w_call_cd(_Complex double (MS *f)(_Complex double), double *out) {
    _Complex double z = 1.5 + 2.5 * __builtin_complex(0.0, 1.0);
    _Complex double r = f(z);
    out[0] = __real__ r;
    out[1] = __imag__ r;
}

/* Win64: hidden result pointer in rcx, three ints in edx, r8d, r9d, then two
 * by-reference structs whose addresses are on the stack at [rsp+32] and
 * [rsp+40]. */
void w_call_ref5(s_big (MS *f)(int, int, int, s_ffi, s_c3), s_big *out) {
    s_ffi a = {0.5f, 0.25f, -1};
    s_c3 b = {'k', 'l', 'm'};
    *out = f(100, 200, 300, a, b);
}
