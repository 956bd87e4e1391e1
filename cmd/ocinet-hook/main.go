// Command ocinet-hook is ocinet's OCI hook as a binary of its own, for
// programs that would rather not have runc start their own (larger) binary
// for every container: it links only package hook, not containerd's client,
// so it starts faster.
//
//	ocinet-hook [--data-root DIR] [--namespace NS] [--cni-path DIRS]
//	            [--cni-netconfpath DIR] [--netns-dir DIR] [--hook-timeout D]
//	            [--dns-linger D] EVENT
//
// Put it into a spec with spec.WithHooks("/path/to/ocinet-hook",
// cfg.Args()...); runc appends the event (createRuntime or poststop) and
// writes the container's state to its standard input. Build it static
// (CGO_ENABLED=0): linked against libc, every start pays for the dynamic
// loader.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/ocinet/ocinet"

	"github.com/ocinet/ocinet/hook"
)

func main() {
	ocinet.RunHelper() // ocinet's helper processes are this program started again
	var cfg hook.Config
	fs := flag.NewFlagSet("ocinet-hook", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ocinet-hook [flags] createRuntime|poststop")
		os.Exit(2)
	}
	if err := hook.Run(context.Background(), fs.Arg(0), os.Stdin, os.Stderr, cfg); err != nil {
		os.Exit(1)
	}
}
