/* Run-time version and build description. */
#include "build_config.h"
#include "protood.h"

#define STR_(x) #x
#define STR(x) STR_(x)

uint32_t protood_version_number(void)
{
    return PROTOOD_VERSION_NUMBER;
}

const char *protood_version_string(void)
{
    return PROTOOD_VERSION_STRING;
}

uint32_t protood_abi_version(void)
{
    return PROTOOD_ABI_VERSION;
}

const char *protood_build_info(void)
{
    return "version=" PROTOOD_VERSION_STRING ";abi=" STR(PROTOOD_ABI_VERSION)
           /* Debian's BLIS has no pkg-config file, so only OpenBLAS reports a version. */
           ";blas=" PROTOOD_BLAS_NAME PROTOOD_BLAS_VERSION_SUFFIX
           ";openmp=" STR(PROTOOD_HAVE_OPENMP);
}
