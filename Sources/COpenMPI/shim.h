// Open MPI headers, used only by the C shim target CMPIShim (Swift never imports mpi.h).
#include <mpi.h>
