package hook

import "errors"

// ErrInvalid reports an OCI state, request annotation or configuration that
// was refused. Nothing on the host was changed.
var ErrInvalid = errors.New("invalid hook input")
