package portmap_test

import (
	"errors"
	"fmt"

	"github.com/ocinet/ocinet/portmap"
)

func ExampleParse() {
	m, err := portmap.Parse("127.0.0.1:8000-8001:80-81/UDP")
	if err != nil {
		panic(err)
	}
	fmt.Println(m)
	ports, err := m.Expand()
	if err != nil {
		panic(err)
	}
	for _, p := range ports {
		fmt.Println(p)
	}

	auto, _ := portmap.Parse("[::1]::80")
	_, err = auto.Expand()
	fmt.Println(errors.Is(err, portmap.ErrInvalid), "(an Allocator must choose the host port)")

	_, err = portmap.Parse("8080:80/tpc")
	fmt.Println(err)
	fmt.Println(errors.Is(err, portmap.ErrInvalid))
	// Output:
	// 127.0.0.1:8000-8001:80-81/udp
	// 80/udp -> 127.0.0.1:8000
	// 81/udp -> 127.0.0.1:8001
	// true (an Allocator must choose the host port)
	// publish "8080:80/tpc": unknown protocol "tpc" (want tcp, udp or sctp)
	// true
}
