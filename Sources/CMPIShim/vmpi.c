// Implementation of the vmpi shim (see include/vmpi.h).
#include "vmpi.h"

#include <mpi.h>
#include <string.h>
#include <time.h>

static MPI_Datatype vmpi_type(vmpi_dtype t) {
    switch (t) {
    case VMPI_FLOAT: return MPI_FLOAT;
    case VMPI_DOUBLE: return MPI_DOUBLE;
    case VMPI_INT64: return MPI_INT64_T;
    case VMPI_UINT8: return MPI_UINT8_T;
    }
    return MPI_BYTE;
}

static MPI_Op vmpi_mpi_op(vmpi_op op) {
    switch (op) {
    case VMPI_SUM: return MPI_SUM;
    case VMPI_MAX: return MPI_MAX;
    case VMPI_MIN: return MPI_MIN;
    }
    return MPI_SUM;
}

int vmpi_init(int *provided) {
    int level = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &level);
    if (rc != MPI_SUCCESS) return rc;
    if (provided) *provided = level;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int vmpi_is_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

int vmpi_is_finalized(void) {
    int flag = 0;
    MPI_Finalized(&flag);
    return flag;
}

int vmpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int vmpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

int vmpi_processor_name(char *buffer, int capacity) {
    char name[MPI_MAX_PROCESSOR_NAME + 1];
    int len = 0;
    int rc = MPI_Get_processor_name(name, &len);
    if (rc != MPI_SUCCESS) return rc;
    name[len] = 0;
    if (capacity > 0) {
        strncpy(buffer, name, (size_t)capacity - 1);
        buffer[capacity - 1] = 0;
    }
    return MPI_SUCCESS;
}

int vmpi_library_version(char *buffer, int capacity) {
    char text[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    int len = 0;
    int rc = MPI_Get_library_version(text, &len);
    if (rc != MPI_SUCCESS) return rc;
    text[len] = 0;
    if (capacity > 0) {
        strncpy(buffer, text, (size_t)capacity - 1);
        buffer[capacity - 1] = 0;
    }
    return MPI_SUCCESS;
}

int vmpi_version(int *major, int *minor) { return MPI_Get_version(major, minor); }

void vmpi_error_string(int code, char *buffer, int capacity) {
    char text[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (capacity <= 0) return;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
    text[len] = 0;
    strncpy(buffer, len > 0 ? text : "unknown MPI error", (size_t)capacity - 1);
    buffer[capacity - 1] = 0;
}

int vmpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

int vmpi_sleeping_barrier(long sleep_us) {
    MPI_Request request;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &request);
    if (rc != MPI_SUCCESS) return rc;
    struct timespec nap;
    nap.tv_sec = sleep_us / 1000000;
    nap.tv_nsec = (sleep_us % 1000000) * 1000;
    for (;;) {
        int done = 0;
        rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (done) return MPI_SUCCESS;
        nanosleep(&nap, NULL);
    }
}

int vmpi_allreduce(void *buffer, int count, vmpi_dtype dtype, vmpi_op op) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, vmpi_type(dtype), vmpi_mpi_op(op), MPI_COMM_WORLD);
}

int vmpi_iallreduce(void *buffer, int count, vmpi_dtype dtype, vmpi_op op, intptr_t *request) {
    MPI_Request r = MPI_REQUEST_NULL;
    int code = MPI_Iallreduce(MPI_IN_PLACE, buffer, count, vmpi_type(dtype), vmpi_mpi_op(op), MPI_COMM_WORLD, &r);
    *request = (intptr_t)r;
    return code;
}

int vmpi_test(intptr_t *request, int *done) {
    MPI_Request r = (MPI_Request)*request;
    int code = MPI_Test(&r, done, MPI_STATUS_IGNORE);
    *request = (intptr_t)r;
    return code;
}

int vmpi_wait(intptr_t *request) {
    MPI_Request r = (MPI_Request)*request;
    int code = MPI_Wait(&r, MPI_STATUS_IGNORE);
    *request = (intptr_t)r;
    return code;
}

int vmpi_bcast(void *buffer, int count, vmpi_dtype dtype, int root) {
    return MPI_Bcast(buffer, count, vmpi_type(dtype), root, MPI_COMM_WORLD);
}

int vmpi_allgather(const void *send, int count, vmpi_dtype dtype, void *recv) {
    MPI_Datatype t = vmpi_type(dtype);
    return MPI_Allgather(send, count, t, recv, count, t, MPI_COMM_WORLD);
}

void vmpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int vmpi_finalize(void) { return MPI_Finalize(); }
