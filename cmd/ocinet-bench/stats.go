package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// series is a set of timings of one operation.
type series []time.Duration

// quantile returns the q-quantile by nearest rank (the median of an even
// count is the mean of the two middle values).
func (s series) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	d := slices.Clone(s)
	slices.Sort(d)
	if q == 0.5 && len(d)%2 == 0 {
		return (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func (s series) median() time.Duration { return s.quantile(0.5) }
func (s series) p90() time.Duration    { return s.quantile(0.9) }

func (s series) sum() time.Duration {
	var t time.Duration
	for _, d := range s {
		t += d
	}
	return t
}

// Row is one line of the result table: a measured operation and, where it
// has one, the baseline measured in the same run.
type Row struct {
	Section  string  `json:"section"`
	Name     string  `json:"name"`
	N        int     `json:"n"`
	MedianMS float64 `json:"median_ms"`
	P90MS    float64 `json:"p90_ms"`

	Baseline     string  `json:"baseline,omitempty"`
	BaseN        int     `json:"baseline_n,omitempty"`
	BaseMedianMS float64 `json:"baseline_median_ms,omitempty"`
	BaseP90MS    float64 `json:"baseline_p90_ms,omitempty"`
	// Ratio is the median of the ratios of the pairs measured in turn
	// (measured[i] / baseline[i]) when the two series are paired, and
	// MedianMS / BaseMedianMS otherwise.
	Ratio float64 `json:"ratio,omitempty"`
	// Paired says the ratio is of pairs; RatioOfMedians is then the other
	// way to compare, kept for reference.
	Paired         bool    `json:"paired,omitempty"`
	RatioOfMedians float64 `json:"ratio_of_medians,omitempty"`

	// Goal is the ratio the project aims for ("<= 1.10"), GoalMax its
	// bound; Met says whether the ratio is within it.
	Goal    string  `json:"goal,omitempty"`
	GoalMax float64 `json:"-"`
	Met     *bool   `json:"met,omitempty"`

	// Note is shown in the table; Fields carry the same facts for JSON.
	Note   string         `json:"note,omitempty"`
	Fields map[string]any `json:"fields,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newRow makes a row from a measured series.
func newRow(section, name string, s series) Row {
	return Row{Section: section, Name: name, N: len(s), MedianMS: ms(s.median()), P90MS: ms(s.p90())}
}

// against adds the baseline and the ratio of the medians.
func (r Row) against(name string, b series) Row {
	r.Baseline, r.BaseN = name, len(b)
	r.BaseMedianMS, r.BaseP90MS = ms(b.median()), ms(b.p90())
	if r.BaseMedianMS > 0 {
		r.Ratio = r.MedianMS / r.BaseMedianMS
	}
	return r
}

// againstPaired adds a baseline whose i-th timing was measured right
// after the i-th of r's (see interleave): the ratio is the median of the
// pairs' ratios, which cancels the drift of the machine between pairs.
func (r Row) againstPaired(name string, a, b series) Row {
	r = r.against(name, b)
	if len(a) != len(b) || len(a) == 0 {
		return r
	}
	ratios := make([]float64, 0, len(a))
	for i := range a {
		if b[i] > 0 {
			ratios = append(ratios, float64(a[i])/float64(b[i]))
		}
	}
	if len(ratios) == 0 {
		return r
	}
	slices.Sort(ratios)
	m := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		m = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	r.RatioOfMedians, r.Ratio, r.Paired = r.Ratio, m, true
	return r
}

// goal records the ratio the project aims for: at most max.
func (r Row) goal(max float64) Row {
	r.Goal, r.GoalMax = fmt.Sprintf("<= %.2f", max), max
	if r.Ratio > 0 {
		met := r.Ratio <= max
		r.Met = &met
	}
	return r
}

func (r Row) note(format string, args ...any) Row {
	if r.Note != "" {
		r.Note += "; "
	}
	r.Note += fmt.Sprintf(format, args...)
	return r
}

func (r Row) field(k string, v any) Row {
	if r.Fields == nil {
		r.Fields = map[string]any{}
	}
	r.Fields[k] = v
	return r
}

// Report is everything one run measured.
type Report struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Command  string    `json:"command"`
	Host     hostInfo  `json:"host"`
	N        int       `json:"n"`
	Rows     []Row     `json:"rows"`
	// Notes are the breakdowns, profiles and findings behind the rows.
	Notes []string `json:"notes"`
	// Failures are the sections that could not be measured, and why.
	Failures []string `json:"failures,omitempty"`
	// Leaks are what the run left on the host after its clean-up (the
	// leak oracle's items, "kind: item"), or why they could not be
	// looked for.
	Leaks []string `json:"leaks,omitempty"`
	// Sections are the sections that ran and how long each took.
	Sections []sectionTime `json:"sections"`
}

type sectionTime struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// SettledSeconds is how long the section waited for the host to
	// settle first (settle).
	SettledSeconds float64 `json:"settled_seconds"`
}

type hostInfo struct {
	Kernel   string `json:"kernel"`
	CPUs     int    `json:"cpus"`
	Go       string `json:"go"`
	Iptables string `json:"iptables"`
	LoadAvg  string `json:"loadavg_at_start"`
}

func (r *Report) add(rows ...Row) { r.Rows = append(r.Rows, rows...) }

func (r *Report) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// printTable writes the rows as an aligned table, then the notes.
func (r *Report) printTable(w io.Writer) {
	fmt.Fprintf(w, "ocinet-bench: %s\n", r.Command)
	fmt.Fprintf(w, "host: %s, %d CPUs, %s, %s, load %s; started %s, took %s\n\n",
		r.Host.Kernel, r.Host.CPUs, r.Host.Go, r.Host.Iptables, r.Host.LoadAvg, r.Started.Format(time.RFC3339), r.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "section\tmeasured\tn\tmedian ms\tp90 ms\tbaseline\tmedian ms\tp90 ms\tratio\tgoal\tnote")
	for _, row := range r.Rows {
		base, bmed, bp90, ratio := "-", "", "", ""
		if row.Baseline != "" {
			base = row.Baseline
			bmed, bp90 = fmt.Sprintf("%.2f", row.BaseMedianMS), fmt.Sprintf("%.2f", row.BaseP90MS)
			ratio = fmt.Sprintf("%.2f", row.Ratio)
			if row.Paired {
				ratio += "*"
			}
		}
		goal := row.Goal
		if row.Met != nil {
			if *row.Met {
				goal += " met"
			} else {
				goal += " MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n",
			row.Section, row.Name, row.N, row.MedianMS, row.P90MS, base, bmed, bp90, ratio, goal, row.Note)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nratio: the median of the ratios of pairs measured in turn (marked *), else the ratio of the medians.")
	var took []string
	for _, s := range r.Sections {
		took = append(took, fmt.Sprintf("%s %.0f s", s.Name, s.Seconds))
	}
	fmt.Fprintf(w, "\nsections took: %s\n", strings.Join(took, ", "))
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintln(w, "  - "+strings.ReplaceAll(n, "\n", "\n    "))
		}
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "\nnot measured:")
		for _, f := range r.Failures {
			fmt.Fprintln(w, "  - "+f)
		}
	}
	if len(r.Leaks) > 0 {
		fmt.Fprintln(w, "\nleft on the host after the clean-up:")
		for _, l := range r.Leaks {
			fmt.Fprintln(w, "  - "+l)
		}
	}
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// interleave runs a and b in turn n times (A B A B ...), so that drift of
// the machine affects both alike, and returns their timings. It stops early
// when stop returns true. An error of either ends the run.
func interleave(n int, stop func() bool, a, b func(i int) (time.Duration, error)) (series, series, error) {
	var sa, sb series
	for i := 0; i < n && !stop(); i++ {
		d, err := a(i)
		if err != nil {
			return sa, sb, err
		}
		sa = append(sa, d)
		if d, err = b(i); err != nil {
			return sa, sb, err
		}
		sb = append(sb, d)
	}
	return sa, sb, nil
}
