/* jitffi: a JIT trampoline compiler for C calls — the C API.
 *
 * A C declaration is parsed into a signature, compiled once into machine
 * code (a forward trampoline that calls a C function, or a reverse closure
 * that turns handler + context into a plain C function pointer), and then
 * called many times at nearly the cost of a direct call.
 *
 * Conventions:
 * - Every int-returning function returns 0 on success and a nonzero error
 *   code otherwise; the message is then available from jitffi_last_error on
 *   the same thread.
 * - Memory is freed by whoever allocated it: objects returned through `out`
 *   parameters are freed with their _free function; inputs are borrowed for
 *   the duration of the call only.
 * - Nothing unwinds across this boundary.
 */
#ifndef JITFFI_H
#define JITFFI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct jitffi_sig jitffi_sig;         /* opaque */
typedef struct jitffi_call jitffi_call;       /* compiled forward trampoline */
typedef struct jitffi_closure jitffi_closure; /* reverse closure */

typedef enum {
    JITFFI_ABI_DEFAULT = 0, /* the host's C convention */
    JITFFI_ABI_SYSV64,
    JITFFI_ABI_WIN64,
    JITFFI_ABI_AAPCS64,
    JITFFI_ABI_APPLE_ARM64
} jitffi_abi;

/* Error codes (the nonzero results). */
enum {
    JITFFI_OK = 0,
    JITFFI_ERR_PARSE = 1,       /* the declaration did not parse */
    JITFFI_ERR_UNSUPPORTED = 2, /* a type the ABI planner cannot handle */
    JITFFI_ERR_INVALID = 3,     /* a NULL or otherwise invalid argument */
    JITFFI_ERR_EXEC = 4,        /* executable memory could not be obtained */
    JITFFI_ERR_ABI = 5,         /* the ABI cannot execute on this host */
    JITFFI_ERR_INTERNAL = 6     /* a bug in jitffi (reported, never executed) */
};

/* Parses `decl` (`len` bytes; it need not be NUL-terminated) into a
 * signature for `abi`. Example: "double cos(double)", or for a variadic
 * call shape "int printf(const char *, ..., int, double)". */
int jitffi_sig_parse(const char *decl, size_t len, jitffi_abi abi, jitffi_sig **out);
void jitffi_sig_free(jitffi_sig *sig);
size_t jitffi_sig_nargs(const jitffi_sig *sig);    /* fixed + variadic */
size_t jitffi_sig_ret_size(const jitffi_sig *sig); /* bytes a ret buffer needs */

/* target NULL: unbound (target given per call); else bound into the code.
 * The call object does not borrow `sig`: the signature may be freed first. */
int jitffi_call_compile(const jitffi_sig *sig, const void *target, jitffi_call **out);
void jitffi_call_free(jitffi_call *call);
/* args[i] points at argument i as its C type; ret receives the result as its
 * C type (jitffi_sig_ret_size bytes). For a bound call, target is ignored. */
void jitffi_call_invoke(const jitffi_call *call, const void *target,
                        void *const *args, void *ret);
/* The compiled entry itself, for callers that want no extra call layer. */
typedef void (*jitffi_entry)(const void *target, void *const *args, void *ret);
jitffi_entry jitffi_call_entry(const jitffi_call *call);

typedef void (*jitffi_handler)(void *ctx, void *const *args, void *ret);
/* *code receives a plain C function pointer with the signature's ABI. */
int jitffi_closure_new(const jitffi_sig *sig, jitffi_handler handler, void *ctx,
                       jitffi_closure **out, void **code);
void jitffi_closure_free(jitffi_closure *closure);

/* Copies the calling thread's last error message (NUL-terminated, truncated
 * to cap) and returns its full length; 0 when there is none. */
size_t jitffi_last_error(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* JITFFI_H */
