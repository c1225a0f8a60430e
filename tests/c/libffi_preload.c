/* Linked against the system libffi (-lffi); run once plainly and once with
   LD_PRELOAD=libjitffi.so. Prints which library ffi_call resolved to, checks
   a call and a closure, and times ffi_call on i64 add3(i64, i64, i64). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ffi.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static int64_t add3(int64_t a, int64_t b, int64_t c) { return a + b + c; }

static void handler(ffi_cif *cif, void *ret, void **args, void *ud) {
  (void)cif;
  *(ffi_arg *)ret = (ffi_arg)(*(int *)args[0] * *(int *)ud);
}

int main(void) {
  Dl_info info;
  if (!dladdr((void *)&ffi_call, &info)) return 10;
  printf("ffi_call from: %s\n", info.dli_fname);

  ffi_cif cif;
  ffi_type *at[3] = {&ffi_type_sint64, &ffi_type_sint64, &ffi_type_sint64};
  if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 3, &ffi_type_sint64, at) != FFI_OK) return 11;
  int64_t a = 1, b = 2, c = 3, r = 0;
  void *av[3] = {&a, &b, &c};
  ffi_call(&cif, FFI_FN(add3), &r, av);
  if (r != 6) return 12;

  /* short f(int): the result is widened to ffi_arg. */
  ffi_cif ccif;
  ffi_type *ct[1] = {&ffi_type_sint32};
  if (ffi_prep_cif(&ccif, FFI_DEFAULT_ABI, 1, &ffi_type_sint16, ct) != FFI_OK) return 13;
  void *code;
  ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
  int k = -3;
  if (!cl || ffi_prep_closure_loc(cl, &ccif, handler, &k, code) != FFI_OK) return 14;
  short s = ((short (*)(int))code)(7);
  if (s != -21) return 15;
  ffi_closure_free(cl);

  enum { N = 5000000 };
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < N; i++) {
    a = i;
    ffi_call(&cif, FFI_FN(add3), &r, av);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / N;
  printf("ffi_call add3: %.2f ns/call (last %lld)\n", ns, (long long)r);
  return r == (N - 1) + 5 ? 0 : 16;
}
