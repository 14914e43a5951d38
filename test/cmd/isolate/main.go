//go:build linux

// Command isolate runs a program in the network namespace it was started in
// (the local cluster starts it in a new user and network namespace), with
// that namespace's loopback up and one TCP port on it joined to a Unix
// socket outside: the program reaches the host's service through the socket
// and nothing else, and every port it binds is its own.
//
// Usage: isolate -listen 127.0.0.1:PORT -to /path/to.sock -- program args...
//
// The local cluster runs Tekton's controller this way: it and Tekton's
// webhook both bind :8080 for knative's health probes (a fixed port), so
// they cannot share a network namespace.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "", "host:port to listen on in this namespace")
	to := flag.String("to", "", "Unix socket each connection is joined to")
	flag.Parse()
	if *listen == "" || *to == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: isolate -listen 127.0.0.1:PORT -to SOCKET -- program args...")
		os.Exit(2)
	}
	if err := loopbackUp(); err != nil {
		fmt.Fprintln(os.Stderr, "isolate: bringing the namespace's loopback up:", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "isolate:", err)
		os.Exit(1)
	}
	go forward(l, *to)

	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "isolate:", err)
		os.Exit(1)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range signals {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	if exit, ok := err.(*exec.ExitError); ok {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "isolate:", err)
		os.Exit(1)
	}
}

// loopbackUp sets IFF_UP on lo: a new network namespace starts with it down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func forward(l net.Listener, socket string) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			upstream, err := net.Dial("unix", socket)
			if err != nil {
				return
			}
			defer upstream.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(upstream, conn); done <- struct{}{} }()
			go func() { _, _ = io.Copy(conn, upstream); done <- struct{}{} }()
			<-done
		}()
	}
}
