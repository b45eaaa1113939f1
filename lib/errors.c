/* Status texts and the thread-local last-error message. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

/* Long enough for a function name, an argument, a value and a file path. */
#define LAST_ERROR_CAPACITY 1024

static _Thread_local char last_error[LAST_ERROR_CAPACITY];

const char *protood_status_string(protood_status status)
{
    switch (status) {
    case PROTOOD_OK: return "ok";
    case PROTOOD_E_INVALID_ARG: return "invalid argument";
    case PROTOOD_E_NOMEM: return "out of memory";
    case PROTOOD_E_SHAPE: return "shape mismatch or size overflow";
    case PROTOOD_E_STATE: return "invalid state for this call";
    case PROTOOD_E_NONFINITE: return "non-finite value or all-zero row in input";
    case PROTOOD_E_LABEL: return "label out of range";
    case PROTOOD_E_IO: return "input/output error";
    case PROTOOD_E_FORMAT: return "malformed, corrupt or unsupported file or buffer";
    case PROTOOD_E_CALLBACK: return "callback failed";
    case PROTOOD_E_UNSUPPORTED: return "feature not built in";
    case PROTOOD_E_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

const char *protood_last_error(void)
{
    return last_error;
}

protood_status pood_fail(protood_status status, const char *func, const char *fmt, ...)
{
    int used = snprintf(last_error, sizeof last_error, "%s: ", func);
    if (used < 0 || (size_t)used >= sizeof last_error)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error + used, sizeof last_error - (size_t)used, fmt, ap);
    va_end(ap);
    return status;
}
