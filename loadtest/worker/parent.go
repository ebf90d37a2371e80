package worker

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

// Launcher says how to start a worker process: the same binary with `loadtest worker`
// by default; tests point it at the test binary with an environment switch.
type Launcher struct {
	Path string
	Args []string
	Env  []string // added to the parent's environment
	// Stderr receives the workers' stderr; nil means the parent's.
	Stderr io.Writer
}

// SelfLauncher re-executes the running binary as `<exe> loadtest worker`.
func SelfLauncher() (Launcher, error) {
	exe, err := os.Executable()
	if err != nil {
		return Launcher{}, fmt.Errorf("finding own executable to start workers: %w", err)
	}
	return Launcher{Path: exe, Args: []string{"loadtest", "worker"}}, nil
}

// Proc is a running worker as the parent sees it. Messages arrive on the channel given to
// Start; Send writes a command. Methods are safe for concurrent use.
type Proc struct {
	Index int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	done  chan struct{}
	err   error
}

// Start launches worker spec.Index, writes its spec, and forwards each message line to
// msgs from a goroutine of its own (a line that does not decode becomes a fatal message),
// so msgs must be drained by the caller. When the process's stdout ends and it has exited,
// Done is closed and Err reports the exit; nothing more is sent on msgs for it.
func Start(l Launcher, spec Spec, msgs chan<- Msg) (*Proc, error) {
	cmd := exec.Command(l.Path, l.Args...)
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.Stderr = l.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %d (%s): %w", spec.Index, l.Path, err)
	}
	p := &Proc{Index: spec.Index, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	b, _ := json.Marshal(spec)
	if err := p.Send(string(b)); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("worker %d: sending spec: %w", spec.Index, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), MaxLine)
		for sc.Scan() {
			var m Msg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = Msg{Type: MsgFatal, Error: fmt.Sprintf("worker %d sent an undecodable line: %v", spec.Index, err)}
			}
			m.Worker = spec.Index
			msgs <- m
		}
		if err := sc.Err(); err != nil {
			msgs <- Msg{Type: MsgFatal, Worker: spec.Index, Error: fmt.Sprintf("worker %d output: %v", spec.Index, err)}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Send writes one command line.
func (p *Proc) Send(line string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// CloseInput closes the worker's stdin: it stops and writes its final message.
func (p *Proc) CloseInput() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stdin.Close()
}

// Done is closed when the process has exited and its output is drained.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Kill ends the process at once.
func (p *Proc) Kill() { _ = p.cmd.Process.Kill() }

// PID of the worker process.
func (p *Proc) PID() int { return p.cmd.Process.Pid }
