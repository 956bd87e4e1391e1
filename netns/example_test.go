package netns_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"github.com/ocinet/ocinet/netns"
)

// A pod's namespace, made before its first process, named after its ID.
func ExampleCreate() {
	path, err := netns.Create("", "default-web")
	if err != nil {
		log.Fatal(err)
	}
	defer netns.Remove(path)
	fmt.Println(path) // /var/run/netns/default-web
}

// Look at a namespace's links without moving the caller's thread.
func ExampleNetNS_Do() {
	ns, err := netns.Open("/var/run/netns/default-web")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	err = ns.Do(func() error {
		links, err := net.Interfaces()
		for _, l := range links {
			fmt.Println(l.Name, l.Flags)
		}
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Remove the namespaces in the default directory that no container owns,
// at start-up, before anything new is created.
func ExampleSweep() {
	running := map[string]bool{"default-web": true}
	removed, err := netns.Sweep("", func(path string) bool {
		name := path[strings.LastIndexByte(path, '/')+1:]
		return !running[name]
	})
	if err != nil {
		log.Print(err)
	}
	fmt.Println("removed", removed)
}

// Give a plugin that accepts only /proc/<pid>/ns/net the namespace at a
// named path.
func ExampleHold() {
	proc, release, err := netns.Hold(context.Background(), "/var/run/netns/default-web")
	if err != nil {
		log.Fatal(err)
	}
	defer release()
	os.Setenv("CNI_NETNS", proc) // for example
}
