// oneDNN (Debian libdnnl-dev 2.6): its row-major sgemm, which is faster than OpenBLAS's on the
// skinny products of convolutions, and the OpenMP thread count it runs with.
#include <oneapi/dnnl/dnnl.h>

// libgomp (oneDNN's threading runtime); declared here because omp.h is not on clang's path.
void omp_set_num_threads(int n);
int omp_get_max_threads(void);
