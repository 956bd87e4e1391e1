package hosts

import "fmt"

// Validate checks an extra host: a valid name and either an address
// without a zone or Gateway. Errors wrap ErrInvalid.
func (e ExtraHost) Validate() error {
	if err := ValidateName(e.Name); err != nil {
		return fmt.Errorf("extra host: %w", err)
	}
	switch {
	case e.Gateway && e.IP.IsValid():
		return fmt.Errorf("extra host %q: both an address (%s) and %s: %w", e.Name, e.IP, HostGateway, ErrInvalid)
	case !e.Gateway && !e.IP.IsValid():
		return fmt.Errorf("extra host %q: no address: %w", e.Name, ErrInvalid)
	case e.IP.Zone() != "":
		return fmt.Errorf("extra host %q: address %q has a zone: %w", e.Name, e.IP.String(), ErrInvalid)
	}
	return nil
}

// Validate checks DNS overrides: specified server addresses, search
// domains and options that fit on a resolv.conf line. Errors wrap
// ErrInvalid.
func (d DNS) Validate() error { return validateDNS(&d) }
