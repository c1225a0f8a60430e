/* The callee cases, as X-macro lines (callees.c includes this file three
   times: definitions, reference callers, table).

   CASE(abis, ret, name, (params), (call args), body)
     defines `ret name params body`, its ms_abi twin name_ms when abis is
     BOTH, and reference callers ref_name / ref_name_ms that call it
     directly with the arguments A(i, type, initializer).
   VCASE(...) is the same for a void function (it reports through REC).
   CALL(abis, ret, tag, fn, "decl", (call args))
     a reference caller ref_tag (and ref_tag_ms) of a hand-written function
     fn (and fn_ms), for variadic functions: decl is jitffi's declaration
     of that call, with the variadic types after the ellipsis.

   abis: BOTH, or SYSV where the ms_abi twin is skipped: `long` (LP64 in
   gcc even in ms_abi functions, 32-bit in jitffi's Win64 data model),
   `long double` (x87 in gcc's ms_abi functions, double in MSVC, which
   jitffi's Win64 model follows) and `_Complex long double` (same reason).

   Argument values are distinctive per position: integers 0x1111*(i+1)
   truncated, negative values for signed narrow types, doubles 1.5+i, so a
   swapped, dropped or mis-extended argument changes the result. Bodies REC
   what they received into the sink where the result alone would not show
   every argument. */

/* ---- scalars: each type in and out --------------------------------- */
CASE(BOTH, long long, ext_char, (char a), (A(0, char, -7)), { return (long long)a; })
CASE(BOTH, long long, ext_schar, (signed char a), (A(0, signed char, -100)), { return (long long)a; })
CASE(BOTH, long long, ext_uchar, (unsigned char a), (A(0, unsigned char, 0xF3)), { return (long long)a; })
CASE(BOTH, long long, ext_short, (short a), (A(0, short, -0x1234)), { return (long long)a; })
CASE(BOTH, long long, ext_ushort, (unsigned short a), (A(0, unsigned short, 0xFEDC)), { return (long long)a; })
CASE(BOTH, long long, ext_int, (int a), (A(0, int, -0x12345678)), { return (long long)a; })
CASE(BOTH, long long, ext_uint, (unsigned a), (A(0, unsigned, 0xF2345678u)), { return (long long)a; })
CASE(SYSV, long long, ext_long, (long a), (A(0, long, -0x123456789AL)), { return (long long)a; })
CASE(SYSV, unsigned long long, ext_ulong, (unsigned long a), (A(0, unsigned long, 0xF23456789ABCDEF0UL)), { return a; })
CASE(BOTH, long long, ext_bool, (_Bool a), (A(0, _Bool, 1)), { return (long long)a * 3; })
CASE(BOTH, double, ext_float, (float a), (A(0, float, -1.75f)), { return (double)a; })

CASE(BOTH, char, ret_char, (int x), (A(0, int, 0x12F9)), { return (char)x; })
CASE(BOTH, signed char, ret_schar, (int x), (A(0, int, 0x123480)), { return (signed char)x; })
CASE(BOTH, unsigned char, ret_uchar, (int x), (A(0, int, 0x1234FE)), { return (unsigned char)x; })
CASE(BOTH, short, ret_short, (int x), (A(0, int, 0x1238765)), { return (short)x; })
CASE(BOTH, unsigned short, ret_ushort, (int x), (A(0, int, 0x12F8765)), { return (unsigned short)x; })
CASE(BOTH, int, ret_int, (long long x), (A(0, long long, 0x1234567887654321LL)), { return (int)x; })
CASE(BOTH, unsigned, ret_uint, (long long x), (A(0, long long, 0x12345678F7654321LL)), { return (unsigned)x; })
CASE(SYSV, long, ret_long, (int x), (A(0, int, -5)), { return (long)x * 0x100000001L; })
CASE(SYSV, unsigned long, ret_ulong, (unsigned x), (A(0, unsigned, 0x89ABCDEFu)), { return (unsigned long)x << 28; })
CASE(BOTH, long long, ret_ll, (long long a, long long b), (A(0, long long, 0x1111111111LL), A(1, long long, -0x2222)), { return a * 3 + b; })
CASE(BOTH, unsigned long long, ret_ull, (unsigned long long a, unsigned long long b), (A(0, unsigned long long, 0xF111111111111111ULL), A(1, unsigned long long, 0x2222)), { return a ^ (b << 3); })
CASE(BOTH, _Bool, ret_bool, (int x), (A(0, int, 0x100)), { return x != 0; })
CASE(BOTH, _Bool, ret_bool0, (int x), (A(0, int, 0)), { return x != 0; })
CASE(BOTH, float, ret_float, (double x), (A(0, double, 3.25)), { return (float)x * 2.0f; })
CASE(BOTH, double, ret_double, (double a, double b), (A(0, double, 1.5), A(1, double, -2.5)), { return a * 10.0 + b; })
CASE(BOTH, size_t, ret_size, (size_t a, size_t b), (A(0, size_t, 0x1111), A(1, size_t, 0x8000000000000000ULL)), { return a | b; })
CASE(BOTH, const char *, ret_ptr, (const char *p, long long n), (A(0, const char *, callee_text), A(1, long long, 5)), { return p + n; })
CASE(BOTH, long long, ptr_in, (const char *p, int *q), (A(0, const char *, callee_text), A(1, int *, &callee_int)), { return p[3] * 1000 + *q; })
CASE(BOTH, double, ptr_fn, (double (*f)(double), double x), (A(0, dfn, half), A(1, double, 7.0)), { return f(x) + 1.0; })
CASE(SYSV, long double, ret_ld, (long double a, long double b), (A(0, long double, 1.25L), A(1, long double, -3.0L)), { return a * 8 + b / 3; })
CASE(SYSV, double, ld_in, (int i, long double a, double d), (A(0, int, 11), A(1, long double, 2.5L), A(2, double, 0.125)), { return (double)(a * i) + d; })
CASE(BOTH, __int128, ret_i128, (__int128 a, int s), (A(0, __int128, -((__int128)0x123456789ABCDEFLL << 40)), A(1, int, 3)), { return a >> s; })
CASE(BOTH, unsigned __int128, ret_u128, (unsigned __int128 a, unsigned __int128 b), (A(0, unsigned __int128, ((unsigned __int128)0xF1ULL << 64) | 0x1234), A(1, unsigned __int128, 0x5555)), { return a * 3 + b; })
CASE(BOTH, long long, mix_narrow, (char a, unsigned char b, short c, unsigned short d, _Bool e, signed char f), (A(0, char, -1), A(1, unsigned char, 0xEE), A(2, short, -0x2222), A(3, unsigned short, 0xCCCC), A(4, _Bool, 1), A(5, signed char, -0x66)), { REC(a); REC(b); REC(c); REC(d); REC(e); REC(f); return a + b * 3 + c * 5 + d * 7 + e * 11 + f * 13; })
CASE(BOTH, int, noargs, (void), (), { return 0x1234567; })
VCASE(BOTH, void_rec, (int a, double b, short c), (A(0, int, 0x1111), A(1, double, 2.5), A(2, short, -0x3333)), { REC(a); REC(b); REC(c); })
VCASE(BOTH, void_void, (void), (), { REC(callee_int); })

/* ---- many arguments, stack spills ---------------------------------- */
CASE(BOTH, double, many20,
     (int i0, double d0, int i1, double d1, int i2, double d2, int i3, double d3, int i4, double d4,
      int i5, double d5, int i6, double d6, int i7, double d7, int i8, double d8, int i9, double d9),
     (A(0, int, 0x1111), A(1, double, 1.5), A(2, int, 0x2222), A(3, double, 2.5), A(4, int, 0x3333), A(5, double, 3.5),
      A(6, int, 0x4444), A(7, double, 4.5), A(8, int, 0x5555), A(9, double, 5.5), A(10, int, 0x6666), A(11, double, 6.5),
      A(12, int, 0x7777), A(13, double, 7.5), A(14, int, 0x8888), A(15, double, 8.5), A(16, int, 0x9999), A(17, double, 9.5),
      A(18, int, 0xAAAA), A(19, double, 10.5)),
     { REC(i0); REC(d0); REC(i1); REC(d1); REC(i2); REC(d2); REC(i3); REC(d3); REC(i4); REC(d4);
       REC(i5); REC(d5); REC(i6); REC(d6); REC(i7); REC(d7); REC(i8); REC(d8); REC(i9); REC(d9);
       return i0 - i9 + d0 * d9 + i5 * d5; })
CASE(BOTH, float, f10i10,
     (float f0, float f1, float f2, float f3, float f4, float f5, float f6, float f7, float f8, float f9,
      int i0, int i1, int i2, int i3, int i4, int i5, int i6, int i7, int i8, int i9),
     (A(0, float, 1.5f), A(1, float, 2.5f), A(2, float, 3.5f), A(3, float, 4.5f), A(4, float, 5.5f),
      A(5, float, 6.5f), A(6, float, 7.5f), A(7, float, 8.5f), A(8, float, 9.5f), A(9, float, 10.5f),
      A(10, int, -0x1111), A(11, int, 0x2222), A(12, int, -0x3333), A(13, int, 0x4444), A(14, int, -0x5555),
      A(15, int, 0x6666), A(16, int, -0x7777), A(17, int, 0x8888), A(18, int, -0x9999), A(19, int, 0xAAAA)),
     { REC(f0); REC(f1); REC(f2); REC(f3); REC(f4); REC(f5); REC(f6); REC(f7); REC(f8); REC(f9);
       REC(i0); REC(i1); REC(i2); REC(i3); REC(i4); REC(i5); REC(i6); REC(i7); REC(i8); REC(i9);
       return f9 * i9 - f0 + i0; })
CASE(BOTH, long long, ll14,
     (long long a0, long long a1, long long a2, long long a3, long long a4, long long a5, long long a6,
      long long a7, long long a8, long long a9, long long a10, long long a11, long long a12, long long a13),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, long long, 0x7777), A(7, long long, 0x8888),
      A(8, long long, 0x9999), A(9, long long, 0xAAAA), A(10, long long, 0xBBBB), A(11, long long, 0xCCCC),
      A(12, long long, 0xDDDD), A(13, long long, -0xEEEE)),
     { REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(a6); REC(a7); REC(a8); REC(a9);
       REC(a10); REC(a11); REC(a12); REC(a13); return a0 * 2 + a13 * 3 + a7; })
CASE(BOTH, long long, narrow_stack,
     (long long a0, long long a1, long long a2, long long a3, long long a4, long long a5,
      char c, short s, signed char sc, unsigned char uc, unsigned short us, _Bool b, float f),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, char, -3), A(7, short, -0x7777),
      A(8, signed char, -0x78), A(9, unsigned char, 0xA9), A(10, unsigned short, 0xBBBB), A(11, _Bool, 1),
      A(12, float, -6.5f)),
     { REC(c); REC(s); REC(sc); REC(uc); REC(us); REC(b); REC(f);
       return a0 + a5 + (long long)c * 1000 + (long long)s * 7 + sc * 11 + uc * 13 + us * 17 + b * 19 + (long long)f; })
CASE(BOTH, long long, five, (int a, double b, long long c, float d, short e),
     (A(0, int, -0x1111), A(1, double, 2.5), A(2, long long, 0x3333333333LL), A(3, float, 4.5f), A(4, short, -0x5555)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); return a + (long long)(b * 100) + c * 3 + (long long)(d * 10) + e * 7; })
CASE(BOTH, long long, ll7,
     (long long a0, long long a1, long long a2, long long a3, long long a4, long long a5, long long a6),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, long long, -0x7777)),
     { REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(a6); return a0 + a6 * 5 + a3; })
CASE(BOTH, long long, ll9,
     (long long a0, long long a1, long long a2, long long a3, long long a4, long long a5, long long a6,
      long long a7, long long a8),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, long long, 0x7777), A(7, long long, 0x8888),
      A(8, long long, -0x9999)),
     { REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(a6); REC(a7); REC(a8); return a0 + a8 * 5 + a7 * 3; })
VCASE(BOTH, void_many,
      (double d0, double d1, double d2, double d3, double d4, double d5, double d6, double d7, double d8,
       int i0, int i1, int i2, int i3, int i4),
      (A(0, double, 1.5), A(1, double, 2.5), A(2, double, 3.5), A(3, double, 4.5), A(4, double, 5.5),
       A(5, double, 6.5), A(6, double, 7.5), A(7, double, 8.5), A(8, double, 9.5),
       A(9, int, 0x1111), A(10, int, 0x2222), A(11, int, 0x3333), A(12, int, 0x4444), A(13, int, 0x5555)),
      { REC(d0); REC(d1); REC(d2); REC(d3); REC(d4); REC(d5); REC(d6); REC(d7); REC(d8);
        REC(i0); REC(i1); REC(i2); REC(i3); REC(i4); })

/* ---- DESIGN.md "Tricky cases", each with that exact shape --------- */
CASE(BOTH, int, tc1, (struct ffi s), (A(0, struct ffi, {1.5f, -2.25f, 0x1234})), { REC(s); return (int)(s.a * 100) + (int)(s.b * 10) + s.c; })
CASE(BOTH, struct ffi, tc2, (float a, float b, int c), (A(0, float, 0.5f), A(1, float, 8.75f), A(2, int, -0x3333)), { struct ffi r = { a * 2, b - 1, c * 3 }; return r; })
CASE(BOTH, struct ff, tc3, (struct ff v), (A(0, struct ff, {1.5f, 2.5f})), { struct ff r = { v.y * 3, v.x - 7 }; return r; })
CASE(BOTH, struct fff, tc4, (struct fff v), (A(0, struct fff, {1.5f, 2.5f, 3.5f})), { struct fff r = { v.z, v.x * 2, v.y - 1 }; return r; })
CASE(BOTH, struct dc8, tc5, (struct dc8 v), (A(0, struct dc8, {1.5, {1, 2, 3, 4, 5, 6, 7, -8}})), { struct dc8 r = v; r.d = -v.d * 4; for (int i = 0; i < 8; i++) r.c[i] = (char)(v.c[7 - i] + 0x10); return r; })
CASE(BOTH, struct d4, tc6, (struct d4 v), (A(0, struct d4, {1.5, 2.5, 3.5, 4.5})), { struct d4 r = { v.d, v.c * 2, v.b * 3, v.a * 4 }; return r; })
CASE(BOTH, struct d5, tc7, (struct d5 v), (A(0, struct d5, {1.5, 2.5, 3.5, 4.5, 5.5})), { struct d5 r = { v.e, v.d, v.c * 2, v.b * 3, v.a * 4 }; return r; })
CASE(BOTH, struct ll3, tc8, (int k), (A(0, int, -0x1111)), { struct ll3 r = { k, (long long)k << 20, ~(long long)k }; return r; })
CASE(BOTH, struct fd, tc9, (struct fd v), (A(0, struct fd, {1.5f, 2.5})), { REC(v.a); REC(v.b); struct fd r = { (float)v.b * 2, v.a - 0.25 }; return r; })
CASE(BOTH, struct pci, tc10, (struct pci v), (A(0, struct pci, {-5, 0x12345678})), { REC(v); struct pci r = { (char)(v.c * 3), v.i ^ 0x0F0F0F0F }; return r; })
CASE(BOTH, int, tc11, (struct c3 s, int k), (A(0, struct c3, {1, -2, 3}), A(1, int, 0x4444)), { REC(s); return s.a * 100 + s.b * 10 + s.c + k; })
CASE(BOTH, float, tc12, (union uf u, float f), (A(0, union uf, {.i = 0x40200000}), A(1, float, 0.5f)), { REC(u); return u.f * 4 + f; })
CASE(BOTH, union udf, tc13, (union udf u), (A(0, union udf, {.f = {1.5f, -2.5f}})), { union udf r; r.f[0] = u.f[1] * 2; r.f[1] = u.f[0] + 1; return r; })
CASE(BOTH, struct hfa4, tc14, (struct hfa4 v), (A(0, struct hfa4, {{1.5f, 2.5f}, {3.5f, 4.5f}})), { struct hfa4 r = { { v.c[1], v.c[0] }, { v.p.b * 2, v.p.a * 3 } }; return r; })
CASE(BOTH, __int128, tc15, (__int128 a, __int128 b), (A(0, __int128, ((__int128)0x1111222233334444LL << 64) | 0x5555666677778888ULL), A(1, __int128, -((__int128)0x99990000LL << 64) - 3)), { return a * 3 - b; })
CASE(BOTH, int, tc16, (signed char a, unsigned short b, _Bool c), (A(0, signed char, -3), A(1, unsigned short, 0xFFF0), A(2, _Bool, 1)), { REC(a); REC(b); REC(c); return a * 100000 + b * 2 + c; })
CASE(BOTH, double, tc17,
     (long long a, long long b, long long c, long long d, long long e, long long f, struct lld s, double x, long long g),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, struct lld, {0x7777, 7.5}), A(7, double, 8.5), A(8, long long, 0x9999)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); REC(f); REC(s); REC(x); REC(g); return s.a + s.b * x + g; })
CASE(BOTH, double, tc18,
     (double a, double b, double c, double d, double e, double f, double g, struct dd s, double x),
     (A(0, double, 1.5), A(1, double, 2.5), A(2, double, 3.5), A(3, double, 4.5), A(4, double, 5.5), A(5, double, 6.5),
      A(6, double, 7.5), A(7, struct dd, {8.5, 9.5}), A(8, double, 10.5)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); REC(f); REC(g); REC(s); REC(x); return s.a * x - s.b + g; })
CASE(BOTH, double, tc19,
     (double a, double b, double c, double d, double e, double f, struct ddd s, double x),
     (A(0, double, 1.5), A(1, double, 2.5), A(2, double, 3.5), A(3, double, 4.5), A(4, double, 5.5), A(5, double, 6.5),
      A(6, struct ddd, {7.5, 8.5, 9.5}), A(7, double, 10.5)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); REC(f); REC(s); REC(x); return s.a + s.b * s.c - x; })
CASE(BOTH, long long, tc20,
     (long long a, long long b, long long c, long long d, long long e, long long f, long long g, struct ll2 s, long long x),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, long long, 0x7777), A(7, struct ll2, {0x8888, -0x9999}), A(8, long long, 0xAAAA)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); REC(f); REC(g); REC(s); REC(x); return s.a * 3 + s.b * 5 + x * 7 + g; })
CASE(BOTH, long long, tc21,
     (long long a, long long b, long long c, long long d, long long e, __int128 q, long long x),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, __int128, ((__int128)0x6666 << 64) | 0x7777), A(6, long long, 0x8888)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); REC(q); REC(x); return (long long)(q >> 64) * 3 + (long long)q * 5 + x; })
CASE(BOTH, __int128, tc22, (int a, __int128 b), (A(0, int, -0x1111), A(1, __int128, ((__int128)0x2222 << 64) | 0x3333)), { REC(a); REC(b); return b * a; })
CASE(BOTH, double, tc23, (int a, double b, int c, double d, int e, double f),
     (A(0, int, 0x1111), A(1, double, 2.5), A(2, int, -0x3333), A(3, double, 4.5), A(4, int, 0x5555), A(5, double, 6.5)),
     { REC(a); REC(b); REC(c); REC(d); REC(e); REC(f); return a + b * 10 + c * 100 + d * 1000 + e * 3 + f * 7; })
CASE(BOTH, long long, tc24,
     (long long a, long long b, long long c, long long d, long long e, long long f, long long g, long long h,
      char p, short q, int r, char s),
     (A(0, long long, 0x1111), A(1, long long, 0x2222), A(2, long long, 0x3333), A(3, long long, 0x4444),
      A(4, long long, 0x5555), A(5, long long, 0x6666), A(6, long long, 0x7777), A(7, long long, 0x8888),
      A(8, char, -9), A(9, short, -0xAAA), A(10, int, 0xBBBBBB), A(11, char, 0x4C)),
     { REC(g); REC(h); REC(p); REC(q); REC(r); REC(s); return a + h * 3 + p * 5 + q * 7 + r * 11 + s * 13; })
CALL(BOTH, int, tc25, tc25, "int tc25(int n, ..., double, int)", (A(0, int, 2), A(1, double, 2.5), A(2, int, 3)))
CALL(BOTH, double, tc26, tc26, "double tc26(int n, ..., struct dd)", (A(0, int, 1), A(1, struct dd, {1.5, -2.5})))
CASE(SYSV, long double, tc27, (long double a, int n, long double b),
     (A(0, long double, 1.5L), A(1, int, -3), A(2, long double, 0.1L)), { return a * n + b; })
CASE(BOTH, _Complex double, tc28, (_Complex double z), (A(0, _Complex double, 1.5 + 2.5 * I)), { return z * z + 1.0; })

/* ---- complex ------------------------------------------------------- */
CASE(BOTH, _Complex float, cplx_f, (_Complex float a, _Complex float b), (A(0, _Complex float, 1.5f - 0.5f * I), A(1, _Complex float, -2.0f + 3.0f * I)), { return a * b; })
CASE(BOTH, _Complex double, cplx_d2, (int k, _Complex double a, double x, _Complex double b), (A(0, int, 3), A(1, _Complex double, 1.5 + 2.5 * I), A(2, double, 0.5), A(3, _Complex double, -4.0 + 0.25 * I)), { return a * k + b * x; })
CASE(SYSV, _Complex long double, cplx_ld, (_Complex long double a, int k), (A(0, _Complex long double, 1.5L - 2.5L * I), A(1, int, -2)), { return a * k + 0.5L; })

/* ---- variadic (the functions are written out in callees.c) --------- */
CALL(BOTH, int, vsum3, vsum, "int vsum(int n, ..., int, int, int)", (A(0, int, 3), A(1, int, 0x1111), A(2, int, -0x2222), A(3, int, 0x3333)))
CALL(BOTH, int, vsum0, vsum, "int vsum(int n, ...)", (A(0, int, 0)))
CALL(BOTH, int, vsum9, vsum, "int vsum(int n, ..., int, int, int, int, int, int, int, int, int)",
     (A(0, int, 9), A(1, int, 0x1111), A(2, int, 0x2222), A(3, int, 0x3333), A(4, int, 0x4444), A(5, int, 0x5555),
      A(6, int, 0x6666), A(7, int, 0x7777), A(8, int, 0x8888), A(9, int, 0x9999)))
CALL(BOTH, double, vmix4, vmix, "double vmix(const char *fmt, ..., int, double, int, double)",
     (A(0, const char *, "idid"), A(1, int, 0x1111), A(2, double, 2.5), A(3, int, -0x3333), A(4, double, 4.5)))
CALL(BOTH, double, vmix_d, vmix, "double vmix(const char *fmt, ..., double)", (A(0, const char *, "d"), A(1, double, -1.25)))
CALL(BOTH, double, vmix12, vmix,
     "double vmix(const char *fmt, ..., double, double, double, double, double, double, double, double, double, double, int, long long)",
     (A(0, const char *, "ddddddddddiL"), A(1, double, 1.5), A(2, double, 2.5), A(3, double, 3.5), A(4, double, 4.5),
      A(5, double, 5.5), A(6, double, 6.5), A(7, double, 7.5), A(8, double, 8.5), A(9, double, 9.5), A(10, double, 10.5),
      A(11, int, -0x1111), A(12, long long, 0x2222222222LL)))
CALL(BOTH, double, vmix_ints, vmix, "double vmix(const char *fmt, ..., long long, long long, long long, long long, long long, long long, int)",
     (A(0, const char *, "LLLLLLi"), A(1, long long, 0x1111), A(2, long long, 0x2222), A(3, long long, 0x3333),
      A(4, long long, 0x4444), A(5, long long, 0x5555), A(6, long long, 0x6666), A(7, int, -0x7777)))
