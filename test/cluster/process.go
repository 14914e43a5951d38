package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// host runs the cluster's programs as processes of this machine: each logs
// to <dir>/logs/<name>.log, and every one is kept, for the logs of a failing
// test and for the bench to measure.
type host struct {
	dir   string
	tools *Tools
	log   func(format string, args ...any)

	mu    sync.Mutex
	procs []*process
}

// program is one program of the cluster, described as data: what runs, with
// what environment, and what says it is ready. The ports it serves are in
// its args or env, chosen with freePorts.
type program struct {
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

// process is one running program.
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

// run starts a program and waits until it is ready. The process is returned
// even when it is not, for the caller to keep (and stop).
func (h *host) run(ctx context.Context, prog program) (*process, error) {
	p, err := h.start(prog.name, prog.env, prog.sys, prog.bin, prog.args...)
	if err != nil {
		return nil, err
	}
	ready := prog.ready
	if prog.readyLog != "" {
		ready = logContains(p, prog.readyLog)
	}
	return p, until(ctx, prog.readyWithin, prog.waitingFor, p, ready)
}

// start starts a process, letting tweak add to its SysProcAttr (namespaces, say).
func (h *host) start(name string, env []string, tweak func(*syscall.SysProcAttr), bin string, args ...string) (*process, error) {
	logPath := filepath.Join(h.dir, "logs", name+".log")
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
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// stopAll stops every process still running, the last started first: what a
// component started and did not stop itself.
func (h *host) stopAll() {
	h.mu.Lock()
	procs := append([]*process(nil), h.procs...)
	h.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(10 * time.Second)
	}
}

// logs returns the last lines of every process's log, for a failing test.
func (h *host) logs(lines int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, p := range h.procs {
		fmt.Fprintf(&b, "----- %s (last %d lines of %s)\n%s\n", p.name, lines, p.log, p.tail(lines))
	}
	return b.String()
}

// pid is the process id of the live program of that name, the program
// itself where isolate runs it (isolate's own forwarding is the harness's
// cost, not the program's); 0 if none.
func (h *host) pid(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.procs {
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

// stop sends SIGTERM, then SIGKILL to the group after a grace period.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
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
