// The two LZ4 entry points Verilator's FST writer calls, declared for machines that have
// the LZ4 runtime library (liblz4.so.1, present on most Linux systems) but not its
// development header.  Used only when <lz4.h> is absent (sim/fast.py decides); the
// declarations are LZ4's stable public API, linked against liblz4.so.1 by soname.
#ifndef WIRETICK_COMPAT_LZ4_H
#define WIRETICK_COMPAT_LZ4_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
