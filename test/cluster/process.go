package cluster

import (
	"context"
	"fmt"
	"k8s.io/apimachinery/pkg/util/wait"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// process is one program of the cluster, logging to <dir>/logs/<name>.log.
type process struct {
	name string
	cmd  *exec.Cmd
	// wrapped: cmd runs the program as its one child (test/cmd/isolate).
	wrapped bool
	log     string
	started time.Time
	done    chan struct{}
	err     error
}

// component is one program of the cluster, described as data: what runs,
// with what environment, and what says it is ready. The ports it serves are
// in its args or env, chosen with freePorts.
type component struct {
	name string
	bin  string
	args []string
	env  []string
	// sys adds to the process's SysProcAttr (namespaces, say); nil adds none.
	sys func(*syscall.SysProcAttr)
	// ready holds once the program serves, or readyLog is a line its log
	// has then; readyWithin bounds the wait, and waitingFor says what is
	// awaited in the error.
	ready       func(context.Context) error
	readyLog    string
	readyWithin time.Duration
	waitingFor  string
}

// run starts a component and waits until it is ready. The process is
// returned even when it is not, for the caller to keep (and stop).
func (c *Cluster) run(ctx context.Context, comp component) (*process, error) {
	p, err := c.startWith(comp.name, comp.env, comp.sys, comp.bin, comp.args...)
	if err != nil {
		return nil, err
	}
	ready := comp.ready
	if comp.readyLog != "" {
		ready = logContains(p, comp.readyLog)
	}
	return p, until(ctx, comp.readyWithin, comp.waitingFor, p, ready)
}

// startWith starts a process, letting tweak add to its SysProcAttr (namespaces, say).
func (c *Cluster) startWith(name string, env []string, tweak func(*syscall.SysProcAttr), bin string, args ...string) (*process, error) {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that stopping it stops what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if tweak != nil {
		tweak(cmd.SysProcAttr)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

// stop sends SIGTERM, then SIGKILL to the group after a grace period.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill stops the process at once, as a crash would.
func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort asks the kernel for a free port on the loopback address.
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts asks the kernel for n distinct free ports, holding each until
// all are chosen: closing one before asking for the next could get it again.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// until polls cond until it holds, ctx ends, or p exits.
func until(ctx context.Context, timeout time.Duration, what string, p *process, cond func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if last = cond(ctx); last == nil {
			return true, nil
		}
		if p != nil && p.exited() {
			return false, fmt.Errorf("%s exited while waiting for %s: %v\n%s", p.name, what, p.err, p.tail(30))
		}
		return false, nil
	})
	if err == nil || !wait.Interrupted(err) {
		return err
	}
	msg := fmt.Sprintf("timed out after %s waiting for %s: %v", timeout, what, last)
	if p != nil {
		msg += "\n" + p.tail(30)
	}
	return fmt.Errorf("%s", msg)
}

func httpOK(client *http.Client, url, token string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// PID is the process id of the cluster's live program of that name
// ("tekton-controller", "kruise-manager", ...), the program itself where
// isolate runs it (isolate's own forwarding is the harness's cost, not the
// program's); 0 if none.
func (c *Cluster) PID(name string) int {
	for _, p := range c.procs {
		if p.name != name || p.exited() {
			continue
		}
		pid := p.cmd.Process.Pid
		if !p.wrapped {
			return pid
		}
		all, err := procfs.AllProcs()
		if err != nil {
			return 0
		}
		for _, proc := range all {
			if st, err := proc.Stat(); err == nil && st.PPID == pid {
				return proc.PID
			}
		}
		return 0
	}
	return 0
}
