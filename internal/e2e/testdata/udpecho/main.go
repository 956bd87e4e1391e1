// Command udpecho answers every UDP datagram it receives on the port given
// as its argument with the same bytes. The end-to-end tests put it into a
// container to check published UDP ports.
package main

import (
	"log"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: udpecho PORT")
	}
	conn, err := net.ListenPacket("udp", ":"+os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		_, _ = conn.WriteTo(buf[:n], addr)
	}
}
