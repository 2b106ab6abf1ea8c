// OpenBLAS CBLAS interface plus the LAPACK routines we call (OpenBLAS ships LAPACK but no LAPACKE).
#include <stddef.h>
#include <cblas.h>

// Fortran LAPACK symbols inside libopenblas: 32-bit integers, hidden trailing string lengths.
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info, size_t jobz_len, size_t uplo_len);
