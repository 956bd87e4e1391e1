package hook

import "github.com/ocinet/ocinet/internal/errdefs"

// ErrInvalid reports an OCI state, request annotation or configuration that
// was refused. Nothing on the host was changed.
var ErrInvalid = errdefs.ErrInvalid
