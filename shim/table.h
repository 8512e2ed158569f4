/* table.h — turns a symbols.def row's (type, name, ...) list into a parameter
 * list, an argument list, or a list of types, for rows of up to 7 parameters. */
#ifndef SLUICE_TABLE_H
#define SLUICE_TABLE_H

#define TBL_P1(t1,a1) t1 a1
#define TBL_P2(t1,a1,t2,a2) t1 a1, t2 a2
#define TBL_P3(t1,a1,t2,a2,t3,a3) t1 a1, t2 a2, t3 a3
#define TBL_P4(t1,a1,t2,a2,t3,a3,t4,a4) t1 a1, t2 a2, t3 a3, t4 a4
#define TBL_P5(t1,a1,t2,a2,t3,a3,t4,a4,t5,a5) t1 a1, t2 a2, t3 a3, t4 a4, t5 a5
#define TBL_P6(t1,a1,t2,a2,t3,a3,t4,a4,t5,a5,t6,a6) t1 a1, t2 a2, t3 a3, t4 a4, t5 a5, t6 a6
#define TBL_P7(t1,a1,t2,a2,t3,a3,t4,a4,t5,a5,t6,a6,t7,a7) t1 a1, t2 a2, t3 a3, t4 a4, t5 a5, t6 a6, t7 a7

#define TBL_A1(t1,a1) a1
#define TBL_A2(t1,a1,t2,a2) a1, a2
#define TBL_A3(t1,a1,t2,a2,t3,a3) a1, a2, a3
#define TBL_A4(t1,a1,t2,a2,t3,a3,t4,a4) a1, a2, a3, a4
#define TBL_A5(t1,a1,t2,a2,t3,a3,t4,a4,t5,a5) a1, a2, a3, a4, a5
#define TBL_A6(t1,a1,t2,a2,t3,a3,t4,a4,t5,a5,t6,a6) a1, a2, a3, a4, a5, a6
#define TBL_A7(t1,a1,t2,a2,t3,a3,t4,a4,t5,a5,t6,a6,t7,a7) a1, a2, a3, a4, a5, a6, a7

/* Applies M(type, name) to every parameter, separated by commas. */
#define TBL_M1(M,t1,a1) M(t1,a1)
#define TBL_M2(M,t1,a1,t2,a2) M(t1,a1), M(t2,a2)
#define TBL_M3(M,t1,a1,t2,a2,t3,a3) M(t1,a1), M(t2,a2), M(t3,a3)
#define TBL_M4(M,t1,a1,t2,a2,t3,a3,t4,a4) M(t1,a1), M(t2,a2), M(t3,a3), M(t4,a4)
#define TBL_M5(M,t1,a1,t2,a2,t3,a3,t4,a4,t5,a5) M(t1,a1), M(t2,a2), M(t3,a3), M(t4,a4), M(t5,a5)
#define TBL_M6(M,t1,a1,t2,a2,t3,a3,t4,a4,t5,a5,t6,a6) M(t1,a1), M(t2,a2), M(t3,a3), M(t4,a4), M(t5,a5), M(t6,a6)
#define TBL_M7(M,t1,a1,t2,a2,t3,a3,t4,a4,t5,a5,t6,a6,t7,a7) M(t1,a1), M(t2,a2), M(t3,a3), M(t4,a4), M(t5,a5), M(t6,a6), M(t7,a7)

#define TBL_EXPAND(x) x
#define TBL_PARAMS(n, list) TBL_EXPAND(TBL_P##n list)
#define TBL_ARGS(n, list)   TBL_EXPAND(TBL_A##n list)
#define TBL_MAP(n, M, list) TBL_EXPAND(TBL_M##n TBL_PREPEND(M, list))
#define TBL_PREPEND(M, list) (M, TBL_UNPAREN list)
#define TBL_UNPAREN(...) __VA_ARGS__

#endif
