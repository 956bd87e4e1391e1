package dns

// WithIdle is withIdle, for the tests of package dns_test.
var WithIdle = withIdle
