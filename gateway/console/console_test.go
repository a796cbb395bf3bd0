package console

import (
	"regexp"
	"strings"
	"testing"
)

// TestFilesKeepTheCSP checks the embedded files against what the
// Content-Security-Policy allows and what the console promises: no inline
// script or style, no HTML built from strings (innerHTML: a path for
// injected markup), no eval, nothing fetched from another origin, and
// every module import and linked file embedded.
func TestFilesKeepTheCSP(t *testing.T) {
	files := load()
	if len(files) < 8 {
		t.Fatalf("only %d embedded files", len(files))
	}
	forbidden := []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle="`),
		regexp.MustCompile(`(?i)\son[a-z]+="`), // inline event handlers
		regexp.MustCompile(`innerHTML|outerHTML\s*=|insertAdjacentHTML|document\.write`),
		regexp.MustCompile(`\beval\(|new Function\(`),
		regexp.MustCompile(`https?://`),
	}
	imports := regexp.MustCompile(`(?:import|from)\s+"(\./[^"]+)"|(?:src|href)="([^"#]+)"`)
	for name, f := range files {
		if !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".html") && !strings.HasSuffix(name, ".css") {
			continue
		}
		text := string(f.body)
		for _, re := range forbidden {
			if loc := re.FindStringIndex(text); loc != nil {
				// The one allowed http:// is the SVG namespace, a name, not a fetch.
				if strings.Contains(text[loc[0]:min(len(text), loc[1]+30)], "www.w3.org/2000/svg") {
					continue
				}
				t.Errorf("%s: %q", name, text[loc[0]:min(len(text), loc[1]+20)])
			}
		}
		for _, tag := range regexp.MustCompile(`(?i)<script\b[^>]*>`).FindAllString(text, -1) {
			if !strings.Contains(tag, "src=") {
				t.Errorf("%s: an inline script %s", name, tag)
			}
		}
		dir := ""
		if i := strings.LastIndex(name, "/"); i >= 0 {
			dir = name[:i+1]
		}
		for _, m := range imports.FindAllStringSubmatch(text, -1) {
			ref := m[1] + m[2]
			target := dir + strings.TrimPrefix(ref, "./")
			if _, ok := files[target]; !ok {
				t.Errorf("%s refers to %s, which is not embedded", name, ref)
			}
		}
	}
	if _, ok := files["index.html"]; !ok {
		t.Fatal("no index.html")
	}
}

// TestCSPIsStrict: scripts only from the console itself, no inline code,
// requests only to the same origin, no framing.
func TestCSPIsStrict(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"} {
		if !strings.Contains(CSP, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "data: 'self'; script"} {
		if strings.Contains(CSP, bad) {
			t.Errorf("CSP has %q", bad)
		}
	}
}
