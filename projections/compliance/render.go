package compliance

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
)

// CSV writes one row per finding (and one per check without findings).
func (r *Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"check", "status", "source", "title", "resource", "detail"})
	for _, c := range r.Checks {
		if len(c.Findings) == 0 {
			cw.Write([]string{c.ID, c.Status, c.Source, c.Title, "", c.Summary})
		}
		for _, f := range c.Findings {
			cw.Write([]string{c.ID, c.Status, c.Source, c.Title, f.Resource, f.Detail})
		}
	}
	cw.Flush()
	return cw.Error()
}

// bar is one bar of a chart.
type bar struct {
	Label  string
	Value  int
	X, Y   int
	W, H   int
	LabelY int
}

// chart lays out a vertical bar chart in an SVG of width×height.
func barChart(labels []string, values []int, width, height int) []bar {
	if len(values) == 0 {
		return nil
	}
	top := slices.Max(values)
	if top == 0 {
		top = 1
	}
	slot := (width - 40) / len(values)
	var out []bar
	for i, v := range values {
		h := max((height-40)*v/top, 2) // a zero still shows as a sliver
		out = append(out, bar{Label: labels[i], Value: v, X: 30 + i*slot + slot/8, W: slot * 3 / 4, H: h, Y: height - 20 - h, LabelY: height - 5})
	}
	return out
}

// line is one key's polyline in the usage chart.
type line struct {
	Key    string
	Points string
	Color  string
	Total  int
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}

func usageChart(series []Series, width, height int) ([]line, []string) {
	daySet := map[string]bool{}
	top := 1
	for _, s := range series {
		for d, n := range s.Counts {
			daySet[d] = true
			top = max(top, n)
		}
	}
	days := slices.Sorted(maps.Keys(daySet))
	if len(days) == 0 {
		return nil, nil
	}
	step := float64(width-60) / float64(max(1, len(days)-1))
	var out []line
	for i, s := range series {
		var pts []string
		total := 0
		for j, d := range days {
			n := s.Counts[d]
			total += n
			x := 40 + float64(j)*step
			if len(days) == 1 {
				x = float64(width) / 2
			}
			y := float64(height-30) - float64(height-50)*float64(n)/float64(top)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		out = append(out, line{Key: s.Key, Points: strings.Join(pts, " "), Color: palette[i%len(palette)], Total: total})
	}
	return out, days
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"lower": strings.ToLower,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>keyledger compliance report</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{margin-bottom:.2rem} .meta{color:#666;margin-bottom:1.5rem}
table{border-collapse:collapse;width:100%;margin:1rem 0} th,td{border:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4} .pass{color:#1a7f37;font-weight:bold} .fail{color:#cf222e;font-weight:bold} .warn{color:#9a6700;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem} figure{margin:0;border:1px solid #eee;padding:.5rem} figcaption{font-weight:bold;margin-bottom:.3rem}
svg text{font-size:10px;fill:#333}
</style></head><body>
<h1>keyledger compliance report</h1>
<div class="meta">Region {{.R.Region}} · generated {{.R.GeneratedAt.UTC.Format "2006-01-02 15:04 MST"}} · {{.R.Events}} ledger events · {{.R.Keys}} keys</div>
<h2>Checks</h2>
<table><tr><th>Status</th><th>Check</th><th>Source</th><th>Findings</th></tr>
{{range .R.Checks}}<tr><td class="{{lower .Status}}">{{.Status}}</td><td>{{.Title}}</td><td>{{.Source}}</td>
<td>{{if .Findings}}<ul>{{range .Findings}}<li><code>{{.Resource}}</code>: {{.Detail}}</li>{{end}}</ul>{{else}}{{.Summary}}{{end}}</td></tr>
{{end}}</table>
<h2>Charts</h2>
<div class="charts">
<figure id="usage-chart"><figcaption>Usage over time (busiest keys, operations per day)</figcaption>
<svg width="520" height="240" viewBox="0 0 520 240" role="img">
<line x1="40" y1="210" x2="510" y2="210" stroke="#999"/><line x1="40" y1="20" x2="40" y2="210" stroke="#999"/>
{{range .Lines}}<polyline class="series" fill="none" stroke="{{.Color}}" stroke-width="2" points="{{.Points}}"/>{{end}}
{{range $i, $d := .Days}}{{if eq $i 0}}<text x="40" y="225">{{$d}}</text>{{end}}{{end}}
</svg>
<div>{{range .Lines}}<div><span style="color:{{.Color}}">■</span> <code>{{.Key}}</code> ({{.Total}})</div>{{end}}</div></figure>
<figure id="state-chart"><figcaption>Keys by state</figcaption>
<svg width="360" height="240" viewBox="0 0 360 240" role="img">
{{range .States}}<rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#1f77b4"/><text x="{{.X}}" y="{{.LabelY}}">{{.Label}} ({{.Value}})</text>{{end}}
</svg></figure>
<figure id="rotation-chart"><figcaption>Rotation age (days since current key material)</figcaption>
<svg width="520" height="240" viewBox="0 0 520 240" role="img">
{{range .Ages}}<rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#ff7f0e"><title>{{.Label}}: {{.Value}} days</title></rect>{{end}}
</svg></figure>
</div>
</body></html>
`))

// HTML writes a self-contained page (inline CSS and SVG, no scripts).
func (r *Report) HTML(w io.Writer) error {
	var stateLabels []string
	var stateValues []int
	for _, s := range slices.Sorted(maps.Keys(r.KeysByState)) {
		stateLabels, stateValues = append(stateLabels, s), append(stateValues, r.KeysByState[s])
	}
	var ageLabels []string
	var ageValues []int
	for _, k := range slices.Sorted(maps.Keys(r.RotationAge)) {
		if len(ageLabels) == 20 {
			break
		}
		ageLabels, ageValues = append(ageLabels, k), append(ageValues, max(r.RotationAge[k], 0))
	}
	lines, days := usageChart(r.Usage, 520, 240)
	return page.Execute(w, map[string]any{
		"R": r, "Lines": lines, "Days": days,
		"States": barChart(stateLabels, stateValues, 360, 240),
		"Ages":   barChart(ageLabels, ageValues, 520, 240),
	})
}
