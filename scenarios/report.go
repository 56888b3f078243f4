package scenarios

import (
	"fmt"
	"io"
	"time"
)

// WriteReport prints the timeline, one "client-observed outage: N ms" line per measured
// failover, the verdicts and problems.
func (r *Result) WriteReport(w io.Writer) error {
	p := &printer{w: w}
	p.printf("scenario %s (seed %d)\n\n", r.Scenario, r.Seed)
	for _, e := range r.Timeline {
		p.printf("%11s  %-10s %s\n", seconds(e.At), e.Who, e.What)
	}
	if len(r.Outages) > 0 {
		p.printf("\n")
	}
	for _, o := range r.Outages {
		p.printf("%s at %s, %s → %s:\n", quote(o.Event), seconds(o.At), o.Client, o.Target)
		if o.Recovered {
			p.printf("client-observed outage: %d ms\n", o.Duration.Round(time.Millisecond).Milliseconds())
		} else {
			p.printf("client-observed outage: not recovered after %d ms\n", o.Duration.Round(time.Millisecond).Milliseconds())
		}
	}
	if len(r.Verdicts) > 0 || len(r.Problems) > 0 {
		p.printf("\n")
	}
	for _, v := range r.Verdicts {
		mark := "PASS"
		if !v.Pass {
			mark = "FAIL"
		}
		p.printf("%s  %s: %s\n", mark, v.Expectation, v.Detail)
	}
	for _, pr := range r.Problems {
		p.printf("FAIL  event could not be carried out: %s\n", pr)
	}
	if r.Stalls > 0 {
		p.printf("warning: the simulation driver stalled %d times; the run may not be deterministic\n", r.Stalls)
	}
	return p.err
}

// Failures returns one line per failed expectation or problem, saying which and why.
func (r *Result) Failures() []string {
	var out []string
	for _, v := range r.Verdicts {
		if !v.Pass {
			out = append(out, fmt.Sprintf("expectation failed: %s: %s", v.Expectation, v.Detail))
		}
	}
	for _, pr := range r.Problems {
		out = append(out, "event could not be carried out: "+pr)
	}
	return out
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// seconds formats virtual time as seconds with microseconds.
func seconds(d time.Duration) string { return fmt.Sprintf("%.6fs", d.Seconds()) }

func quote(s string) string { return fmt.Sprintf("%q", s) }
