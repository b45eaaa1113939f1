"""Exceptions: one class per libprotood status code, all derived from protood.Error.

Each class also derives from the built-in exception a Python caller would expect for that kind of
failure (ValueError for bad values, OSError for files, ...), so generic handlers keep working.
"""

OK = 0
E_INVALID_ARG = -1
E_NOMEM = -2
E_SHAPE = -3
E_STATE = -4
E_NONFINITE = -5
E_LABEL = -6
E_IO = -7
E_FORMAT = -8
E_CALLBACK = -9
E_UNSUPPORTED = -10
E_INTERNAL = -99

_status_string = None   # set by _native once the library is loaded


class Error(Exception):
    """A libprotood call failed.

    Attributes:
        status:  the negative PROTOOD_E_* code
        message: the library's detail (protood_last_error() of the failing call), naming the
                 function, the argument and the value, e.g.
                 "protood_palm_step: labels[3] = 7 outside [0, 4)"
    """
    status = None

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        # OSError-derived classes: keep errno/strerror meaningless rather than misleading.

    def __str__(self):
        text = _status_string(self.status) if _status_string else str(self.status)
        return f"{self.message} [{text}]" if self.message else text

    def __reduce__(self):
        return (from_status, (self.status, self.message))


class InvalidArgumentError(Error, ValueError):
    """PROTOOD_E_INVALID_ARG: n < 1, unknown key, parameter out of range, missing argument."""


class OutOfMemoryError(Error, MemoryError):
    """PROTOOD_E_NOMEM: the library could not allocate its memory."""


class ShapeError(Error, ValueError):
    """PROTOOD_E_SHAPE: a dimension does not match the handle or file, or a size overflows."""


class StateError(Error, RuntimeError):
    """PROTOOD_E_STATE: the handle is not ready (scoring before fit, CIDER on a bank with K > 1)."""


class NonFiniteError(Error, ValueError):
    """PROTOOD_E_NONFINITE: NaN or Inf in an input, or an all-zero row that cannot be normalised."""


class LabelError(Error, ValueError):
    """PROTOOD_E_LABEL: a label outside [0, n_classes)."""


class FileIOError(Error, OSError):
    """PROTOOD_E_IO: a file could not be opened, read, written, synced or renamed."""


class FormatError(Error, ValueError):
    """PROTOOD_E_FORMAT: a file or buffer is malformed, truncated, corrupt or unsupported."""


class CallbackError(Error, RuntimeError):
    """PROTOOD_E_CALLBACK: a feature callback or a reducer failed. The streaming methods and
    the calls with a reducer re-raise the Python exception that made it fail instead; this class
    appears only without one."""


class UnsupportedError(Error, NotImplementedError):
    """PROTOOD_E_UNSUPPORTED: a feature this build of the library does not include."""


class InternalError(Error, RuntimeError):
    """PROTOOD_E_INTERNAL: a bug in libprotood (please report it with the message)."""


CLASSES = {
    E_INVALID_ARG: InvalidArgumentError,
    E_NOMEM: OutOfMemoryError,
    E_SHAPE: ShapeError,
    E_STATE: StateError,
    E_NONFINITE: NonFiniteError,
    E_LABEL: LabelError,
    E_IO: FileIOError,
    E_FORMAT: FormatError,
    E_CALLBACK: CallbackError,
    E_UNSUPPORTED: UnsupportedError,
    E_INTERNAL: InternalError,
}


def from_status(status, message):
    """The exception object for a status code (Error itself for a code this package does not know)."""
    return CLASSES.get(status, Error)(status, message)
