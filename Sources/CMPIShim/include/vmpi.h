// vmpi: the small C shim around MPI that the Swift Communication target calls.
// Open MPI's MPI_COMM_WORLD / MPI_FLOAT / MPI_SUM are macros over addresses of globals that
// Swift cannot import, so every call the project needs is wrapped here. This header does not
// include mpi.h: Swift code needs no MPI include path.
#ifndef VMPI_H
#define VMPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Element types understood by the reduction and gather calls.
typedef enum { VMPI_FLOAT = 0, VMPI_DOUBLE = 1, VMPI_INT64 = 2, VMPI_UINT8 = 3 } vmpi_dtype;
/// Reduction operators.
typedef enum { VMPI_SUM = 0, VMPI_MAX = 1, VMPI_MIN = 2 } vmpi_op;

/// Initialises MPI with MPI_THREAD_FUNNELED and MPI_ERRORS_RETURN on the world communicator.
/// Returns 0 or an MPI error code; `provided` receives the thread level.
int vmpi_init(int *provided);
/// 1 when MPI_Init has run (and MPI_Finalize has not).
int vmpi_is_initialized(void);
int vmpi_is_finalized(void);
int vmpi_rank(int *rank);
int vmpi_size(int *size);
int vmpi_processor_name(char *buffer, int capacity);
int vmpi_library_version(char *buffer, int capacity);
int vmpi_version(int *major, int *minor);
/// Writes the MPI error string of `code` into `buffer` (always NUL-terminated).
void vmpi_error_string(int code, char *buffer, int capacity);

int vmpi_barrier(void);
/// A barrier that does not spin a core: MPI_Ibarrier, then MPI_Test with `sleep_us` naps.
int vmpi_sleeping_barrier(long sleep_us);

/// In-place all-reduce of `count` elements (count must fit in an int; chunk in the caller).
int vmpi_allreduce(void *buffer, int count, vmpi_dtype dtype, vmpi_op op);
/// Non-blocking in-place all-reduce; `request` receives a handle for vmpi_test / vmpi_wait.
int vmpi_iallreduce(void *buffer, int count, vmpi_dtype dtype, vmpi_op op, intptr_t *request);
/// Progresses a request; `done` becomes 1 when it has completed (the handle is then freed).
int vmpi_test(intptr_t *request, int *done);
/// Waits for a request to complete (the handle is then freed).
int vmpi_wait(intptr_t *request);
/// Broadcast of `count` elements from `root`.
int vmpi_bcast(void *buffer, int count, vmpi_dtype dtype, int root);
/// All-gather: every rank sends `count` elements, `recv` receives size * count elements.
int vmpi_allgather(const void *send, int count, vmpi_dtype dtype, void *recv);

/// Ends every rank of the job with `code`.
void vmpi_abort(int code);
int vmpi_finalize(void);

#ifdef __cplusplus
}
#endif
#endif
