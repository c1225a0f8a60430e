/* Types used by callees.c. This file is also read by tests/exec_callees.rs
   (include_str!) and handed to jitffi's Declarations::define, so it holds
   only struct/union definitions: no preprocessor lines, no `long` and no
   `long double` (their sizes differ between jitffi's SysV and Win64 data
   models, while gcc's ms_abi functions keep the LP64 sizes). */

/* DESIGN.md "Tricky cases", numbered as there. */
struct ffi { float a, b; int c; };                    /* 1, 2 */
struct ff { float x, y; };                            /* 3 */
struct fff { float x, y, z; };                        /* 4 */
struct dc8 { double d; char c[8]; };                  /* 5 */
struct d4 { double a, b, c, d; };                     /* 6 */
struct d5 { double a, b, c, d, e; };                  /* 7 */
struct ll3 { long long a, b, c; };                    /* 8 */
struct fd { float a; double b; };                     /* 9 */
struct __attribute__((packed)) pci { char c; int i; }; /* 10 */
struct c3 { char a, b, c; };                          /* 11 */
union uf { float f; int i; };                         /* 12 */
union udf { double d; float f[2]; };                  /* 13 */
struct hfa4 { struct { float a, b; } p; float c[2]; }; /* 14 */
struct lld { long long a; double b; };                /* 17 */
struct dd { double a, b; };                           /* 18, 26 */
struct ddd { double a, b, c; };                       /* 19 */
struct ll2 { long long a, b; };                       /* 20 */

/* One struct of every size 1..64 bytes, alignment 1. */
struct s1 { unsigned char b[1]; };
struct s2 { unsigned char b[2]; };
struct s3 { unsigned char b[3]; };
struct s4 { unsigned char b[4]; };
struct s5 { unsigned char b[5]; };
struct s6 { unsigned char b[6]; };
struct s7 { unsigned char b[7]; };
struct s8 { unsigned char b[8]; };
struct s9 { unsigned char b[9]; };
struct s10 { unsigned char b[10]; };
struct s11 { unsigned char b[11]; };
struct s12 { unsigned char b[12]; };
struct s13 { unsigned char b[13]; };
struct s14 { unsigned char b[14]; };
struct s15 { unsigned char b[15]; };
struct s16 { unsigned char b[16]; };
struct s17 { unsigned char b[17]; };
struct s18 { unsigned char b[18]; };
struct s19 { unsigned char b[19]; };
struct s20 { unsigned char b[20]; };
struct s21 { unsigned char b[21]; };
struct s22 { unsigned char b[22]; };
struct s23 { unsigned char b[23]; };
struct s24 { unsigned char b[24]; };
struct s25 { unsigned char b[25]; };
struct s26 { unsigned char b[26]; };
struct s27 { unsigned char b[27]; };
struct s28 { unsigned char b[28]; };
struct s29 { unsigned char b[29]; };
struct s30 { unsigned char b[30]; };
struct s31 { unsigned char b[31]; };
struct s32 { unsigned char b[32]; };
struct s33 { unsigned char b[33]; };
struct s34 { unsigned char b[34]; };
struct s35 { unsigned char b[35]; };
struct s36 { unsigned char b[36]; };
struct s37 { unsigned char b[37]; };
struct s38 { unsigned char b[38]; };
struct s39 { unsigned char b[39]; };
struct s40 { unsigned char b[40]; };
struct s41 { unsigned char b[41]; };
struct s42 { unsigned char b[42]; };
struct s43 { unsigned char b[43]; };
struct s44 { unsigned char b[44]; };
struct s45 { unsigned char b[45]; };
struct s46 { unsigned char b[46]; };
struct s47 { unsigned char b[47]; };
struct s48 { unsigned char b[48]; };
struct s49 { unsigned char b[49]; };
struct s50 { unsigned char b[50]; };
struct s51 { unsigned char b[51]; };
struct s52 { unsigned char b[52]; };
struct s53 { unsigned char b[53]; };
struct s54 { unsigned char b[54]; };
struct s55 { unsigned char b[55]; };
struct s56 { unsigned char b[56]; };
struct s57 { unsigned char b[57]; };
struct s58 { unsigned char b[58]; };
struct s59 { unsigned char b[59]; };
struct s60 { unsigned char b[60]; };
struct s61 { unsigned char b[61]; };
struct s62 { unsigned char b[62]; };
struct s63 { unsigned char b[63]; };
struct s64 { unsigned char b[64]; };

/* Float, double and mixed structs (SSE and mixed eightbytes). */
struct sf1 { float f[1]; };
struct sf2 { float f[2]; };
struct sf3 { float f[3]; };
struct sf4 { float f[4]; };
struct sf5 { float f[5]; };
struct sf6 { float f[6]; };
struct sf7 { float f[7]; };
struct sf8 { float f[8]; };
struct sd1 { double d[1]; };
struct sd2 { double d[2]; };
struct sd3 { double d[3]; };
struct sd4 { double d[4]; };
struct mif { int i; float f; };
struct mfi { float f; int i; };
struct mdfi { double d; float f; int i; };
struct mfii { float f; int i, j; };
struct mcd { char c; double d; };
struct mffd { float a, b; double c; };
struct mdll { double d; long long l; };
struct msf { short s; float f; };
