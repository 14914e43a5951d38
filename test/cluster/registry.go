package cluster

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/time/rate"
)

// Registries are two OCI registries served on the loopback address, in this
// process: the local cluster has no internet. The first holds ko's base image
// (ko's default cannot be fetched) and what the tests push; the second wants
// a user and password, for pull Secrets. Both keep an access log, so that
// tests can tell whether a node pulled again, and serve layers through one
// link whose bandwidth the bench can limit.
type Registries struct {
	// Open is the first registry's host:port; BaseImage is ko's base there.
	Open, BaseImage string
	// Auth wants AuthUser and AuthPassword for every request.
	Auth, AuthUser, AuthPassword string

	accesses  *accessLog
	link      *link
	open, own servedRegistry
}

// Start serves both registries and pushes the base image.
func (r *Registries) Start(ctx context.Context) error {
	r.accesses, r.link = &accessLog{}, &link{}
	var err error
	if r.open, err = serveRegistry(r.accesses, r.link, "", ""); err != nil {
		return err
	}
	r.AuthUser, r.AuthPassword = "puller", "s3cret-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	if r.own, err = serveRegistry(r.accesses, r.link, r.AuthUser, r.AuthPassword); err != nil {
		return err
	}
	r.Open, r.Auth = r.open.addr, r.own.addr
	r.BaseImage = r.Open + "/base/static:nonroot"
	return pushBaseImage(ctx, r.BaseImage)
}

// Stop stops serving both.
func (r *Registries) Stop() {
	for _, s := range []servedRegistry{r.open, r.own} {
		if s.close != nil {
			s.close()
		}
	}
}

// hosts are the local registries' host:port, as image references name them.
func (r *Registries) hosts() []string { return []string{r.Open, r.Auth} }

type servedRegistry struct {
	addr  string
	close func()
}

// serveRegistry serves go-containerregistry's registry on a loopback port;
// with a user, every request must carry it (HTTP basic auth, as an
// htpasswd-protected distribution registry asks). The layers it serves go
// through link.
func serveRegistry(accesses *accessLog, link *link, user, password string) (servedRegistry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return servedRegistry{}, err
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="imageprepull-local"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		accesses.add(r.Method, l.Addr().String()+r.URL.Path, r.UserAgent())
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w = &throttled{ResponseWriter: w, ctx: r.Context(), lim: link.limiter(), served: &link.served}
		}
		reg.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(l) }()
	return servedRegistry{addr: l.Addr().String(), close: func() { _ = srv.Close() }}, nil
}

// link is the registries' way to the nodes: as fast as loopback, or, for the
// bench, a bandwidth shared by every layer download, as a cluster's link to
// a remote registry is.
type link struct {
	mu  sync.Mutex
	lim *rate.Limiter
	// served counts the blob bytes sent over it, since the registries started.
	served atomic.Int64
}

func (l *link) limiter() *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lim
}

// LimitBandwidth makes the local registries serve blobs (layers and
// configs) at most bitsPerSecond in all (0: as fast as loopback). Manifests
// are not limited: a few KiB, their cost is the round trip.
func (r *Registries) LimitBandwidth(bitsPerSecond float64) {
	r.link.mu.Lock()
	defer r.link.mu.Unlock()
	if bitsPerSecond <= 0 {
		r.link.lim = nil
		return
	}
	r.link.lim = rate.NewLimiter(rate.Limit(bitsPerSecond/8), throttleChunk)
}

// LinkBytes is how many blob bytes the link has carried since the
// registries started: a phase's share is the difference.
func (r *Registries) LinkBytes() int64 { return r.link.served.Load() }

// throttleChunk is how many bytes a layer download writes at a time.
const throttleChunk = 32 << 10

// throttled writes a response through the link's limiter, if it has one,
// and counts what it sent.
type throttled struct {
	http.ResponseWriter
	ctx    context.Context
	lim    *rate.Limiter
	served *atomic.Int64
}

func (t *throttled) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), throttleChunk)
		if t.lim != nil {
			if err := t.lim.WaitN(t.ctx, n); err != nil {
				return written, err
			}
		}
		m, err := t.ResponseWriter.Write(p[:n])
		written += m
		t.served.Add(int64(m))
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// accessLog counts the requests the registries answered, by method and
// host/path, and by the first word of their User-Agent.
type accessLog struct {
	mu      sync.Mutex
	counts  map[string]int
	byAgent map[string]int
}

func (a *accessLog) add(method, path, agent string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts, a.byAgent = map[string]int{}, map[string]int{}
	}
	a.counts[method+" "+path]++
	product, _, _ := strings.Cut(agent, " ")
	product, _, _ = strings.Cut(product, "/")
	a.byAgent[product]++
}

// RequestsBy counts the requests the local registries answered whose
// User-Agent starts with agent (a product name, such as the controller's
// registry.UserAgent).
func (r *Registries) RequestsBy(agent string) int {
	r.accesses.mu.Lock()
	defer r.accesses.mu.Unlock()
	return r.accesses.byAgent[agent]
}

// ManifestRequests counts the manifest requests (GET and HEAD) the local
// registries answered for image (host/repository:tag): each pull asks at
// least once.
func (r *Registries) ManifestRequests(image string) int {
	ref, err := name.NewTag(image, name.Insecure)
	if err != nil {
		return 0
	}
	path := ref.RegistryStr() + "/v2/" + ref.RepositoryStr() + "/manifests/" + ref.TagStr()
	r.accesses.mu.Lock()
	defer r.accesses.mu.Unlock()
	return r.accesses.counts["GET "+path] + r.accesses.counts["HEAD "+path]
}
