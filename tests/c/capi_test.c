/* The C API used from C, as a runtime would: compiled by gcc against
 * include/jitffi.h and linked with libjitffi.so by tests/capi.rs.
 * Prints one line per check and "N passed, M failed" at the end; exits
 * nonzero on any failure. */
#include <jitffi.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            passed++;                                                         \
        } else {                                                              \
            failed++;                                                         \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

typedef struct { float a, b; int c; } mixed;
typedef struct { long long a, b, c; } big;

static mixed scale(mixed m, int k) {
    mixed r = { m.a * k, m.b * k, m.c * k };
    return r;
}
static big make_big(int x) {
    big r = { x, 2LL * x, 3LL * x };
    return r;
}
static int8_t narrow(int8_t a, uint16_t b, _Bool c) { return (int8_t)(a + b + c); }
static __attribute__((ms_abi)) double ms_mix(int a, double b, int c, double d, int e, double f) {
    return a + b * 10 + c * 100 + d * 1000 + e * 10000 + f * 100000;
}

static jitffi_sig *parse(const char *decl, jitffi_abi abi) {
    jitffi_sig *sig = NULL;
    int rc = jitffi_sig_parse(decl, strlen(decl), abi, &sig);
    if (rc != 0) {
        char buf[256];
        jitffi_last_error(buf, sizeof buf);
        printf("FAIL parse '%s': %s\n", decl, buf);
        failed++;
    }
    return sig;
}

/* Closure handlers: args[i] points at argument i; ret receives the result. */
static void cmp_handler(void *ctx, void *const *args, void *ret) {
    int *calls = ctx;
    int a = **(const int *const *)args[0], b = **(const int *const *)args[1];
    ++*calls;
    *(int *)ret = (a > b) - (a < b);
}
static void scale_handler(void *ctx, void *const *args, void *ret) {
    int k = *(int *)ctx;
    const mixed *m = args[0];
    int extra = *(const int *)args[1];
    mixed r = { m->a * k, m->b * k, m->c * k + extra };
    memcpy(ret, &r, sizeof r);
}
static big big_handler_result;
static void big_handler(void *ctx, void *const *args, void *ret) {
    (void)ctx;
    int x = *(const int *)args[0];
    big r = { x, x + 1, x + 2 };
    memcpy(ret, &r, sizeof r);
}

int main(void) {
    /* cos through an unbound call, the entry function, and a bound call. */
    jitffi_sig *sig = parse("double cos(double)", JITFFI_ABI_DEFAULT);
    CHECK(sig && jitffi_sig_nargs(sig) == 1, "nargs");
    CHECK(sig && jitffi_sig_ret_size(sig) == 8, "ret size %zu", jitffi_sig_ret_size(sig));
    jitffi_call *call = NULL;
    CHECK(jitffi_call_compile(sig, NULL, &call) == 0 && call, "compile unbound");
    double x = 0.5, r = 0;
    void *args[] = { &x };
    jitffi_call_invoke(call, (const void *)&cos, args, &r);
    CHECK(r == cos(0.5), "cos via invoke: %g", r);
    r = 0;
    jitffi_entry entry = jitffi_call_entry(call);
    entry((const void *)&cos, args, &r);
    CHECK(r == cos(0.5), "cos via entry: %g", r);
    jitffi_call *bound = NULL;
    CHECK(jitffi_call_compile(sig, (const void *)&sin, &bound) == 0, "compile bound");
    r = 0;
    jitffi_call_invoke(bound, NULL, args, &r);
    CHECK(r == sin(0.5), "bound sin: %g", r);
    jitffi_call_free(bound);
    jitffi_call_free(call);
    /* The call does not borrow the signature. */
    jitffi_call_compile(sig, (const void *)&cos, &call);
    jitffi_sig_free(sig);
    r = 0;
    jitffi_call_invoke(call, NULL, args, &r);
    CHECK(r == cos(0.5), "call outlives sig: %g", r);
    jitffi_call_free(call);

    /* A struct split across xmm0 and a GPR, in and out. */
    sig = parse("typedef struct { float a, b; int c; } mixed; mixed scale(mixed, int)",
                JITFFI_ABI_DEFAULT);
    CHECK(jitffi_call_compile(sig, (const void *)&scale, &call) == 0, "compile scale");
    mixed m = { 1.5f, -2.0f, 7 }, out;
    int k = 3;
    void *margs[] = { &m, &k };
    CHECK(jitffi_sig_ret_size(sig) >= sizeof(mixed), "ret size");
    char rbuf[64];
    jitffi_call_invoke(call, NULL, margs, rbuf);
    memcpy(&out, rbuf, sizeof out);
    CHECK(out.a == 4.5f && out.b == -6.0f && out.c == 21, "scale: %g %g %d", out.a, out.b, out.c);
    jitffi_call_free(call);
    jitffi_sig_free(sig);

    /* A result through the hidden pointer. */
    sig = parse("struct big { long long a, b, c; }; struct big make_big(int)", JITFFI_ABI_DEFAULT);
    CHECK(jitffi_call_compile(sig, NULL, &call) == 0, "compile make_big");
    int bx = -5;
    void *bargs[] = { &bx };
    big b;
    jitffi_call_invoke(call, (const void *)&make_big, bargs, &b);
    CHECK(b.a == -5 && b.b == -10 && b.c == -15, "make_big: %lld %lld %lld", b.a, b.b, b.c);
    jitffi_call_free(call);
    jitffi_sig_free(sig);

    /* Narrow integers. */
    sig = parse("int8_t narrow(int8_t, uint16_t, _Bool)", JITFFI_ABI_DEFAULT);
    jitffi_call_compile(sig, (const void *)&narrow, &call);
    int8_t na = -100;
    uint16_t nb = 60000;
    _Bool nc = 1;
    void *nargs[] = { &na, &nb, &nc };
    int8_t nr = 0;
    char nbuf[8];
    jitffi_call_invoke(call, NULL, nargs, nbuf);
    memcpy(&nr, nbuf, 1);
    CHECK(nr == narrow(na, nb, nc), "narrow: %d vs %d", nr, narrow(na, nb, nc));
    jitffi_call_free(call);
    jitffi_sig_free(sig);

    /* Variadic: snprintf with an int and a double. */
    sig = parse("int snprintf(char *, size_t, const char *, ..., int, double)", JITFFI_ABI_DEFAULT);
    CHECK(sig && jitffi_sig_nargs(sig) == 5, "variadic nargs");
    jitffi_call_compile(sig, (const void *)&snprintf, &call);
    char text[64];
    char *tp = text;
    size_t cap = sizeof text;
    const char *fmt = "%d|%.2f";
    int vi = 42;
    double vd = 2.5;
    void *vargs[] = { &tp, &cap, &fmt, &vi, &vd };
    int vr = 0;
    char vbuf[8];
    jitffi_call_invoke(call, NULL, vargs, vbuf);
    memcpy(&vr, vbuf, sizeof vr);
    CHECK(vr == 7 && strcmp(text, "42|2.50") == 0, "snprintf: %d '%s'", vr, text);
    jitffi_call_free(call);
    jitffi_sig_free(sig);

    /* Win64 (ms_abi) callee, DESIGN tricky case 23. */
    sig = parse("double f(int, double, int, double, int, double)", JITFFI_ABI_WIN64);
    CHECK(jitffi_call_compile(sig, (const void *)&ms_mix, &call) == 0, "compile win64");
    int i1 = 1, i2 = 2, i3 = 3;
    double d1 = 4, d2 = 5, d3 = 6;
    void *wargs[] = { &i1, &d1, &i2, &d2, &i3, &d3 };
    jitffi_call_invoke(call, NULL, wargs, &r);
    CHECK(r == ms_mix(1, 4, 2, 5, 3, 6), "win64 mix: %g", r);
    jitffi_call_free(call);
    jitffi_sig_free(sig);

    char buf[128];
    CHECK(jitffi_last_error(NULL, 0) == 0, "no error should be pending yet: %zu", jitffi_last_error(buf, sizeof buf));

    /* Closures: qsort with a comparator closure; struct in/out; sret. */
    sig = parse("int cmp(const void *, const void *)", JITFFI_ABI_DEFAULT);
    int ncalls = 0;
    jitffi_closure *clo = NULL;
    void *code = NULL;
    CHECK(jitffi_closure_new(sig, cmp_handler, &ncalls, &clo, &code) == 0 && code, "closure_new");
    int arr[] = { 5, -3, 9, 0, 2, 2, -7 };
    qsort(arr, 7, sizeof arr[0], (int (*)(const void *, const void *))code);
    CHECK(arr[0] == -7 && arr[1] == -3 && arr[2] == 0 && arr[3] == 2 && arr[4] == 2 &&
              arr[5] == 5 && arr[6] == 9 && ncalls > 0,
          "qsort via closure");
    jitffi_closure_free(clo);
    jitffi_sig_free(sig);

    sig = parse("typedef struct { float a, b; int c; } mixed; mixed f(mixed, int)", JITFFI_ABI_DEFAULT);
    int factor = 2;
    CHECK(jitffi_closure_new(sig, scale_handler, &factor, &clo, &code) == 0, "closure mixed");
    mixed (*fm)(mixed, int) = (mixed (*)(mixed, int))code;
    mixed got = fm((mixed){ 1.25f, -4.0f, 10 }, 5);
    CHECK(got.a == 2.5f && got.b == -8.0f && got.c == 25, "closure mixed: %g %g %d", got.a, got.b,
          got.c);
    jitffi_closure_free(clo);
    jitffi_sig_free(sig);

    sig = parse("struct big { long long a, b, c; }; struct big f(int)", JITFFI_ABI_DEFAULT);
    CHECK(jitffi_closure_new(sig, big_handler, NULL, &clo, &code) == 0, "closure sret");
    big_handler_result = ((big (*)(int))code)(40);
    CHECK(big_handler_result.a == 40 && big_handler_result.b == 41 && big_handler_result.c == 42,
          "closure sret values");
    jitffi_closure_free(clo);
    CHECK(jitffi_closure_new(sig, NULL, NULL, &clo, &code) == JITFFI_ERR_INVALID, "NULL handler");
    CHECK(jitffi_closure_new(sig, big_handler, NULL, NULL, &code) == JITFFI_ERR_INVALID, "NULL out");
    jitffi_sig_free(sig);
    jitffi_closure_free(NULL);

    /* Errors: a message with the offset, codes, NULL checks. */
    sig = (jitffi_sig *)1;
    int rc = jitffi_sig_parse("strct s f(void)", 15, JITFFI_ABI_DEFAULT, &sig);
    CHECK(rc == JITFFI_ERR_PARSE && sig == NULL, "parse error code %d", rc);
    size_t n = jitffi_last_error(buf, sizeof buf);
    CHECK(n > 0 && strstr(buf, "strct") && strstr(buf, " at "), "message: '%s'", buf);
    char tiny[4];
    CHECK(jitffi_last_error(tiny, sizeof tiny) == n && strlen(tiny) == 3, "truncation");
    CHECK(jitffi_sig_parse(NULL, 0, JITFFI_ABI_DEFAULT, &sig) == JITFFI_ERR_INVALID, "NULL decl");
    CHECK(jitffi_sig_parse("int f(void)", 11, JITFFI_ABI_DEFAULT, NULL) == JITFFI_ERR_INVALID,
          "NULL out");
    CHECK(jitffi_sig_parse("int f(void)", 11, (jitffi_abi)99, &sig) == JITFFI_ERR_INVALID,
          "bad abi");
    CHECK(jitffi_call_compile(NULL, NULL, &call) == JITFFI_ERR_INVALID, "NULL sig");
    sig = parse("int f(int)", JITFFI_ABI_AAPCS64);
    rc = jitffi_call_compile(sig, NULL, &call);
    jitffi_last_error(buf, sizeof buf);
    CHECK(rc == JITFFI_ERR_ABI && strstr(buf, "aapcs64"), "foreign ABI: %d '%s'", rc, buf);
    jitffi_sig_free(sig);
    jitffi_sig_free(NULL);
    jitffi_call_free(NULL);
    CHECK(jitffi_call_entry(NULL) == NULL, "entry of NULL");
    CHECK(jitffi_sig_nargs(NULL) == 0 && jitffi_sig_ret_size(NULL) == 0, "NULL sig queries");

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
