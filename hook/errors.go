package hook

import "github.com/ocinet/ocinet/internal/errdefs"

// ErrInvalid reports an OCI state, request annotation or configuration that
// was refused. Nothing on the host was changed.
var ErrInvalid = errdefs.ErrInvalid

// ErrNotFound reports something a spec option needs that is not there: the
// hosts files of a container whose network another one is to share.
var ErrNotFound = errdefs.ErrNotFound
