/* Internal: recording failures for protood_last_error(). */
#ifndef PROTOOD_LIB_ERRORS_H
#define PROTOOD_LIB_ERRORS_H

#include "protood.h"

/* Record "func: <formatted message>" as this thread's last error and return `status`, so a
 * failing path reads `return pood_fail(PROTOOD_E_SHAPE, __func__, "dim %lld ...", ...);`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
protood_status pood_fail(protood_status status, const char *func, const char *fmt, ...);

#endif
