package hook

import (
	"github.com/ocinet/ocinet/internal/ident"
	"github.com/ocinet/ocinet/sandbox"
)

// Config is the hook's configuration: package sandbox's, which the program
// that builds the spec fixes and passes on the hook's command line
// ([sandbox.Config.Args], [sandbox.Config.RegisterFlags]).
type Config = sandbox.Config

// DefaultTimeout is the hook's internal deadline when Config.Timeout is 0.
const DefaultTimeout = sandbox.DefaultTimeout

// The labels every attachment made through the hook carries (package
// sandbox's).
const (
	LabelNamespace = sandbox.LabelNamespace
	LabelContainer = sandbox.LabelContainer
)

// ValidateContainerID checks a container ID the way containerd does:
// letters and digits in groups joined by one of '.', '_' or '-', at most 76
// characters. A bad ID is refused with an error wrapping ErrInvalid.
func ValidateContainerID(id string) error { return ident.ContainerID(id) }

func validContainerID(id string) error { return ident.ContainerID(id) }
