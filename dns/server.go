package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	DefaultPort        = 53
	DefaultUDPWorkers  = 4
	DefaultMaxForwards = 64
	DefaultMaxTCPConns = 32
	// TTL is the time to live of the responder's own answers, in seconds:
	// short, since containers come and go.
	TTL = 5
	// maxQuery is the largest query read over UDP; a longer datagram is
	// dropped.
	maxQuery = 4096
	// forwardTimeout bounds one exchange with one upstream server.
	forwardTimeout = 2 * time.Second
)

// Config is what defines one responder: what Start compares with the
// running process and records in its pid file. Network, Listen, Subnets
// and StateDir are required.
type Config struct {
	// Network is the network's name (required).
	Network string
	// Listen are the addresses to listen on, the network's gateways
	// (required); Port is the port (default DefaultPort).
	Listen []netip.Addr
	Port   int
	// Subnets are the network's subnets (required): a query from any other
	// source address is refused.
	Subnets []netip.Prefix
	// Upstreams get every query that is not for a name on the network
	// (default: none, such queries get SERVFAIL).
	Upstreams []netip.AddrPort
	// StateDir is the state root: the hosts stores of every containerd
	// namespace are under StateDir/hosts (required).
	StateDir string
	// Nerdctl is nerdctl's data root, whose hosts store the responder also
	// reads (never writes): the containers nerdctl attached to a network of
	// the same name, with addresses in Subnets, are answered for by name,
	// host name and short ID (NetworkConfig sets
	// DefaultNerdctlRoot; "" reads none). They do not keep the responder
	// running: its linger counts ocinet's containers only.
	Nerdctl string
	// Linger is how long a responder process ([Start]) keeps running once
	// no container is on its network, before it stops on its own: the
	// next container of the network, if it comes sooner, finds it running
	// and pays no start. 0 or less: it runs until [Release] (which then
	// stops it at once), [StopUnused] or [Stop]. A Server of one's own
	// ([NewServer]) ignores it.
	Linger time.Duration
}

// DefaultLinger is the linger package sandbox gives responders.
const DefaultLinger = 2 * time.Second

// Option changes a Server's defaults.
type Option func(*options)

type options struct {
	udpWorkers, maxForwards, maxTCPConns int
	log                                  *slog.Logger
	// linger and idle: once the network has had no container for linger,
	// idle is called; when it returns true, Serve returns.
	linger time.Duration
	idle   func() bool
}

// withIdle makes a Server call idle once its network has had no container
// for linger (the responder process's own exit; see helperMain).
func withIdle(linger time.Duration, idle func() bool) Option {
	return func(o *options) { o.linger, o.idle = linger, idle }
}

// WithLimits bounds a Server's goroutines: udpWorkers readers per UDP
// socket, maxForwards forwarded queries in flight, maxTCPConns open TCP
// connections (defaults DefaultUDPWorkers, DefaultMaxForwards,
// DefaultMaxTCPConns; 0 keeps a default). A query beyond a bound is
// answered SERVFAIL (forwarding) or waits in the kernel's queue (UDP,
// TCP).
func WithLimits(udpWorkers, maxForwards, maxTCPConns int) Option {
	return func(o *options) {
		if udpWorkers > 0 {
			o.udpWorkers = udpWorkers
		}
		if maxForwards > 0 {
			o.maxForwards = maxForwards
		}
		if maxTCPConns > 0 {
			o.maxTCPConns = maxTCPConns
		}
	}
}

// WithLogger gives a Server a logger for start, reload and fault lines;
// never one per query (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

func (c *Config) validate() error {
	if err := validNetwork(c.Network); err != nil {
		return err
	}
	if c.StateDir == "" {
		return fmt.Errorf("dns responder for %q: %w config: the state directory is required", c.Network, ErrInvalid)
	}
	if len(c.Listen) == 0 || len(c.Subnets) == 0 {
		return fmt.Errorf("dns responder for %q: %w config: no listen address or no subnet", c.Network, ErrInvalid)
	}
	for _, a := range c.Listen {
		if !a.IsValid() || a.IsUnspecified() || a.Zone() != "" {
			return fmt.Errorf("dns responder for %q: %w listen address %q: want a specified address without a zone", c.Network, ErrInvalid, a.String())
		}
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("dns responder for %q: %w port %d", c.Network, ErrInvalid, c.Port)
	}
	// A responder never forwards to itself.
	c.Upstreams = slices.DeleteFunc(slices.Clone(c.Upstreams), func(u netip.AddrPort) bool {
		return int(u.Port()) == c.Port && slices.Contains(c.Listen, u.Addr().Unmap())
	})
	return nil
}

// Server is a DNS responder for one network. It answers A, AAAA and PTR for
// the containers on the network from the hosts stores, follows the stores
// as they change, forwards every other query to the upstream servers, and
// refuses queries from outside the network's subnets.
type Server struct {
	cfg   Config
	opts  options
	log   *slog.Logger
	udp   []*net.UDPConn
	tcp   []net.Listener
	table atomic.Pointer[table]
	rr    atomic.Uint32 // round-robin turn
	fwd   chan struct{} // forwarding slots
	store *follower

	closeOnce sync.Once
	wg        sync.WaitGroup
	tcpSrv    []*mdns.Server

	// The linger (options.idle): armed while the network has no container.
	idleMu    sync.Mutex
	idleTimer *time.Timer
	idleDone  chan struct{} // closed when idle said to stop
	idleOnce  sync.Once
}

// NewServer checks cfg, reads the network's members from the hosts stores
// and binds its sockets (UDP and TCP on every listen address). It fails with
// the reason, such as the port being taken, and then holds nothing. Serve
// starts answering.
func NewServer(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := options{udpWorkers: DefaultUDPWorkers, maxForwards: DefaultMaxForwards, maxTCPConns: DefaultMaxTCPConns, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{cfg: cfg, opts: o, log: o.log, fwd: make(chan struct{}, o.maxForwards), idleDone: make(chan struct{})}
	f, err := newFollower(cfg, s.log, func(t *table) {
		s.table.Store(t)
		s.noteMembers(t.members)
	})
	if err != nil {
		return nil, fmt.Errorf("dns responder for %q: %w", cfg.Network, err)
	}
	s.store = f
	lc := net.ListenConfig{Control: freebind}
	for _, a := range cfg.Listen {
		ap := netip.AddrPortFrom(a, uint16(cfg.Port)).String()
		pc, err := lc.ListenPacket(context.Background(), "udp", ap)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("dns responder for %q: %w", cfg.Network, err)
		}
		s.udp = append(s.udp, pc.(*net.UDPConn))
		ln, err := lc.Listen(context.Background(), "tcp", ap)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("dns responder for %q: %w", cfg.Network, err)
		}
		s.tcp = append(s.tcp, &limitListener{Listener: ln, slots: make(chan struct{}, o.maxTCPConns), done: make(chan struct{})})
	}
	return s, nil
}

// freebind lets the responder bind an address the bridge does not have
// yet or whose duplicate address detection (IPv6) is still running.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "udp6" || network == "tcp6" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	return errors.Join(err, serr)
}

// Addrs returns the UDP addresses the server listens on.
func (s *Server) Addrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range s.udp {
		out = append(out, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// Serve answers queries until ctx is done or Close is called, then closes
// the sockets and returns. It returns an error only when following the
// stores fails for good.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("serving", "network", s.cfg.Network, "listen", s.Addrs(), "upstreams", s.cfg.Upstreams, "names", len(s.table.Load().names))
	for _, c := range s.udp {
		for range s.opts.udpWorkers {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.readUDP(c)
			}()
		}
	}
	for _, ln := range s.tcp {
		srv := &mdns.Server{Listener: ln, Net: "tcp", Handler: mdns.HandlerFunc(s.serveTCP),
			ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, IdleTimeout: func() time.Duration { return 5 * time.Second },
			MaxTCPQueries: 128, MsgAcceptFunc: acceptAll}
		s.tcpSrv = append(s.tcpSrv, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.ActivateAndServe()
		}()
	}
	followErr := make(chan error, 1)
	go func() { followErr <- s.store.run() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-followErr:
	case <-s.idleDone:
		s.log.Info("no container on the network", "for", s.opts.linger)
	}
	s.Close()
	s.wg.Wait()
	return err
}

// noteMembers arms the linger when the network has no container and
// disarms it when one comes.
func (s *Server) noteMembers(n int) {
	if s.opts.idle == nil {
		return
	}
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	switch {
	case n > 0 && s.idleTimer != nil:
		s.idleTimer.Stop()
		s.idleTimer = nil
	case n == 0 && s.idleTimer == nil:
		s.idleTimer = time.AfterFunc(s.opts.linger, s.lingerOver)
	}
}

// lingerOver runs when the network has had no container for the linger.
// idle decides, from the stores themselves and under the responders'
// lock; when it says no (a container came that the stores' events have
// not brought yet), the linger starts again, unless the events have
// disarmed it meanwhile.
func (s *Server) lingerOver() {
	s.idleMu.Lock()
	armed := s.idleTimer != nil
	s.idleMu.Unlock()
	if !armed {
		return
	}
	if s.opts.idle() {
		s.idleOnce.Do(func() { close(s.idleDone) })
		return
	}
	s.idleMu.Lock()
	if s.idleTimer != nil {
		s.idleTimer.Reset(s.opts.linger)
	}
	s.idleMu.Unlock()
}

// acceptAll lets every well-formed message through to the handler, which
// decides itself (the default refuses some that deserve a REFUSED or
// NOTIMP of ours).
func acceptAll(mdns.Header) mdns.MsgAcceptAction { return mdns.MsgAccept }

// Close stops the server. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		for _, srv := range s.tcpSrv {
			_ = srv.Shutdown()
		}
		for _, c := range s.udp {
			_ = c.Close()
		}
		for _, ln := range s.tcp {
			_ = ln.Close()
		}
		if s.store != nil {
			s.store.close()
		}
	})
}

// readUDP is one reader of a UDP socket: it answers local names itself and
// hands forwarded queries to a bounded pool.
func (s *Server) readUDP(c *net.UDPConn) {
	buf := make([]byte, maxQuery+1)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n > maxQuery {
			continue // oversized: dropped
		}
		req, resp := s.parse(buf[:n], src.Addr())
		if req == nil && resp == nil {
			continue
		}
		if resp == nil {
			// Forward. The slot is taken here, so at most MaxForwards
			// goroutines exist whatever the rate of queries.
			select {
			case s.fwd <- struct{}{}:
				go func() {
					defer func() { <-s.fwd }()
					s.writeUDP(c, src, req, s.forward(req, "udp"))
				}()
			default:
				s.writeUDP(c, src, req, servfail(req))
			}
			continue
		}
		s.writeUDP(c, src, req, resp)
	}
}

func (s *Server) writeUDP(c *net.UDPConn, dst netip.AddrPort, req, resp *mdns.Msg) {
	size := mdns.MinMsgSize
	if req != nil {
		if o := req.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
	}
	resp.Truncate(size)
	b, err := resp.Pack()
	if err != nil {
		return
	}
	_, _ = c.WriteToUDPAddrPort(b, dst)
}

// serveTCP answers one query on a TCP connection.
func (s *Server) serveTCP(w mdns.ResponseWriter, req *mdns.Msg) {
	src := netip.Addr{}
	if a, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort().Addr()
	}
	resp := s.answer(req, src)
	if resp == nil {
		select {
		case s.fwd <- struct{}{}:
			resp = s.forward(req, "tcp")
			<-s.fwd
		default:
			resp = servfail(req)
		}
	}
	_ = w.WriteMsg(resp)
}

// parse unpacks a UDP query and answers it. It returns the request and
// the response; a nil response with a request means "forward it"; both nil
// mean "drop it": shorter than a header, or itself a response.
func (s *Server) parse(b []byte, src netip.Addr) (*mdns.Msg, *mdns.Msg) {
	req := new(mdns.Msg)
	if err := req.Unpack(b); err != nil {
		if len(b) < 12 || req.Response {
			return nil, nil
		}
		// The header was read: say the rest is malformed.
		resp := new(mdns.Msg)
		resp.SetRcodeFormatError(req)
		resp.Question = nil // what was read of it may be garbage
		return nil, resp
	}
	if req.Response {
		return nil, nil
	}
	return req, s.answer(req, src)
}

func servfail(req *mdns.Msg) *mdns.Msg {
	resp := new(mdns.Msg)
	resp.SetRcode(req, mdns.RcodeServerFailure)
	return resp
}

// inSubnets reports whether src is inside the network.
func (s *Server) inSubnets(src netip.Addr) bool {
	src = src.Unmap()
	for _, p := range s.cfg.Subnets {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// answer returns the response to req from src, or nil when req is to be
// forwarded.
func (s *Server) answer(req *mdns.Msg, src netip.Addr) *mdns.Msg {
	src = src.Unmap()
	resp := new(mdns.Msg)
	switch {
	case !s.inSubnets(src):
		return resp.SetRcode(req, mdns.RcodeRefused)
	case req.Opcode != mdns.OpcodeQuery:
		return resp.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return resp.SetRcodeFormatError(req)
	}
	q := req.Question[0]
	if q.Qclass != mdns.ClassINET {
		return nil
	}
	t := s.table.Load()
	name := lowerASCII(q.Name)
	if q.Qtype == mdns.TypePTR {
		if names, ok := t.reverse(name, src); ok {
			resp.SetReply(req)
			resp.Authoritative = true
			for _, n := range names {
				resp.Answer = append(resp.Answer, &mdns.PTR{Hdr: hdr(q.Name, mdns.TypePTR), Ptr: n})
			}
			return resp
		}
		if a, ok := reverseAddr(name); ok && s.inSubnets(a) {
			// An address of this network with no container: nobody
			// upstream knows it either.
			resp.SetRcode(req, mdns.RcodeNameError)
			resp.Authoritative = true
			return resp
		}
		return nil
	}
	addrs, ok := t.lookup(name, src)
	if !ok {
		return nil
	}
	resp.SetReply(req)
	resp.Authoritative = true
	if n := len(addrs); n > 1 {
		// Round robin: each answer starts one further along.
		k := int(s.rr.Add(1) % uint32(n))
		addrs = append(slices.Clone(addrs[k:]), addrs[:k]...)
	}
	for _, a := range addrs {
		switch {
		case a.Is4() && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY):
			resp.Answer = append(resp.Answer, &mdns.A{Hdr: hdr(q.Name, mdns.TypeA), A: a.AsSlice()})
		case a.Is6() && (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY):
			resp.Answer = append(resp.Answer, &mdns.AAAA{Hdr: hdr(q.Name, mdns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return resp // no record of that type: NOERROR without answers
}

func hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: TTL}
}

// lowerASCII lower-cases the ASCII letters of a name, allocating only when
// there is one to change.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// forward sends req to the upstream servers in turn and returns the first
// answer, or SERVFAIL.
func (s *Server) forward(req *mdns.Msg, proto string) *mdns.Msg {
	c := &mdns.Client{Net: proto, Timeout: forwardTimeout}
	for _, u := range s.cfg.Upstreams {
		resp, _, err := c.Exchange(req, u.String())
		if err == nil && resp != nil {
			resp.Id = req.Id
			return resp
		}
	}
	return servfail(req)
}

// limitListener bounds the open connections of a listener: Accept waits for
// a free slot, and closing a connection frees its slot.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{} // closed by Close
	once  sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// validNetwork accepts the network names ocinet and nerdctl accept, which are
// also safe as a file name: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}.
func validNetwork(name string) error {
	ok := name != "" && len(name) <= 128
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("dns responder: %w network name %q: want [A-Za-z0-9][A-Za-z0-9_.-]{0,127}", ErrInvalid, name)
	}
	return nil
}
