package loadgen

import (
	"runtime"
	"time"
)

// Probe samples the gateway processes' CPU time and resident memory at the
// points of a run that matter: before any connection (the baseline
// memory), once everything is connected (memory per connection), and at
// the start and end of the measured window (CPU). A coordinator of
// several worker processes uses one Probe around all of them.
type Probe struct {
	pids      []int
	before    []ProcSample
	connected []ProcSample
	start     []ProcSample
	stop      []ProcSample
	startAt   time.Time
	stopAt    time.Time
	// Whole-machine CPU at Start and Stop; ok false when /proc/stat was
	// unreadable (the machine figure is then left out).
	machineStart, machineStop machineTimes
	machineOK                 bool
}

// StartProbe takes the baseline sample of pids. With no pids every method
// is a no-op and Stats returns nil.
func StartProbe(pids []int) (*Probe, error) {
	p := &Probe{pids: pids}
	var err error
	p.before, err = ReadProcs(pids)
	return p, err
}

// Connected samples once every connection is open and joined.
func (p *Probe) Connected() error {
	var err error
	p.connected, err = ReadProcs(p.pids)
	return err
}

// Start samples at the start of the measured window.
func (p *Probe) Start() error {
	var err error
	p.startAt = time.Now()
	p.machineStart, err = readMachine()
	p.machineOK = err == nil
	p.start, err = ReadProcs(p.pids)
	return err
}

// Stop samples at the end of the measured window.
func (p *Probe) Stop() error {
	var err error
	p.stopAt = time.Now()
	if p.machineOK {
		p.machineStop, err = readMachine()
		p.machineOK = err == nil
	}
	p.stop, err = ReadProcs(p.pids)
	return err
}

// Stats returns the gateways' figures between the samples; the per-million
// and per-connection figures are filled in by Report.Finalize.
func (p *Probe) Stats() *GatewayStats {
	if len(p.pids) == 0 || len(p.stop) != len(p.pids) || len(p.start) != len(p.pids) {
		return nil
	}
	g := &GatewayStats{WindowSeconds: p.stopAt.Sub(p.startAt).Seconds()}
	for i, pid := range p.pids {
		e := GatewayProc{
			PID:        pid,
			CPUSeconds: (p.stop[i].CPU - p.start[i].CPU).Seconds(),
			RSSEnd:     p.stop[i].RSSBytes,
		}
		if i < len(p.before) {
			e.RSSBefore = p.before[i].RSSBytes
		}
		if i < len(p.connected) {
			e.RSSConnected = p.connected[i].RSSBytes
		}
		g.PIDs = append(g.PIDs, pid)
		g.Each = append(g.Each, e)
		g.CPUSeconds += e.CPUSeconds
		g.RSSBefore += e.RSSBefore
		g.RSSConnected += e.RSSConnected
		g.RSSEnd += e.RSSEnd
	}
	return g
}

// Machine returns how busy the whole machine was between Start and Stop
// (every process: gateways, load generator, brokers, anything else), or
// nil if /proc/stat could not be read.
func (p *Probe) Machine() *MachineStats {
	if !p.machineOK || p.stopAt.IsZero() {
		return nil
	}
	busy := p.machineStop.busy - p.machineStart.busy
	total := p.machineStop.total - p.machineStart.total
	cpus := runtime.NumCPU()
	return &MachineStats{CPUs: cpus, BusyCores: ratio(float64(busy)*float64(cpus), float64(total))}
}
