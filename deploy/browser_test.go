package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"html"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/internal/testbin"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the load report's screenshot to docs/img/loadtest-report.png")

// chromiumFlags keep headless Chromium on this machine: no sandbox (root in CI), no
// network of its own, a throwaway profile.
func chromiumFlags(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + profile}
}

func runChromium(t *testing.T, bin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(chromiumFlags(t.TempDir()), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String(), errb.String()
}

// probeScript runs in a copy of the report (the report itself has no script, by design:
// it opens offline and anywhere). It records script errors from the start, and at the
// end of the body, once the page is laid out, what each chart drew: lines and dots with
// a real size on the page.
const (
	errorRecorder = `<script>window.__errors=[];addEventListener("error",function(e){window.__errors.push(String(e.message))});</script>`
	measure       = `<script>(function(){
var out={charts:[],errors:window.__errors,parseErrors:document.getElementsByTagName("parsererror").length};
document.querySelectorAll("svg.chart").forEach(function(svg){
  var drawn=0;
  svg.querySelectorAll("polyline,circle").forEach(function(el){
    var b=el.getBBox(),r=el.getBoundingClientRect(),s=getComputedStyle(el);
    if((b.width>0||b.height>0)&&(r.width>0||r.height>0)&&s.visibility!=="hidden"&&s.display!=="none")drawn++;
  });
  var t=svg.querySelector("title");
  out.charts.push({title:t?t.textContent:"",drawn:drawn,width:svg.getBoundingClientRect().width});
});
document.body.setAttribute("data-probe",JSON.stringify(out));
})();</script>`
)

var probeRE = regexp.MustCompile(`data-probe="([^"]*)"`)

// TestLoadReportInBrowser: a short real `mgw loadtest run` against a real gateway writes
// its HTML report; headless Chromium opens it, every chart draws lines or dots, no
// script error, and its screenshot shows the series' colours.
func TestLoadReportInBrowser(t *testing.T) {
	chromium := testbin.Need(t, "chromium", "chromium")
	g := serve(t, metricsConfig(startBackend(t)), metricsEnv...)
	dir := t.TempDir()
	report := filepath.Join(dir, "loadtest.html")
	// A ramp of a few seconds, so the RSS-against-connections chart has its points too.
	// Relative file names, so the report's command line (and the screenshot) is short.
	lt := exec.Command(mgwBin, "loadtest", "run", "-target", g.addrs["mobile"], "-stats", g.addrs["admin"],
		"-conns", "600", "-ramp", "200", "-rate", "300", "-warmup", "1s", "-duration", "3s",
		"-html", "loadtest.html", "-json", "loadtest.json")
	lt.Dir = dir
	if out, err := lt.CombinedOutput(); err != nil {
		t.Fatalf("mgw loadtest run: %v\n%s", err, out)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	nCharts := strings.Count(string(page), `<svg class="chart"`)
	if nCharts < 5 {
		t.Fatalf("the report has %d charts", nCharts)
	}

	probed := strings.Replace(string(page), "<head>", "<head>"+errorRecorder, 1)
	probed = strings.Replace(probed, "</body>", measure+"</body>", 1)
	probePath := filepath.Join(dir, "probe.html")
	if err := os.WriteFile(probePath, []byte(probed), 0o600); err != nil {
		t.Fatal(err)
	}
	dom, stderr := runChromium(t, chromium, "--dump-dom", "file://"+probePath)
	m := probeRE.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the probe script did not run (no data-probe in the DOM); chromium said:\n%s", stderr)
	}
	var probe struct {
		Charts []struct {
			Title string  `json:"title"`
			Drawn int     `json:"drawn"`
			Width float64 `json:"width"`
		} `json:"charts"`
		Errors      []string `json:"errors"`
		ParseErrors int      `json:"parseErrors"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &probe); err != nil {
		t.Fatalf("data-probe %q: %v", m[1], err)
	}
	if len(probe.Errors) > 0 || probe.ParseErrors > 0 || strings.Contains(stderr, "Uncaught") {
		t.Errorf("script errors %v, parse errors %d", probe.Errors, probe.ParseErrors)
	}
	if len(probe.Charts) != nCharts {
		t.Errorf("the browser laid out %d charts, the report has %d", len(probe.Charts), nCharts)
	}
	for _, c := range probe.Charts {
		if c.Drawn == 0 || c.Width < 100 {
			t.Errorf("chart %q is blank in the browser: %d lines or dots drawn, %.0f px wide", c.Title, c.Drawn, c.Width)
		}
	}
	t.Logf("charts in the browser: %+v", probe.Charts)

	// The screenshot is of the report as written, not the probe.
	shot := filepath.Join(dir, "loadtest-report.png")
	runChromium(t, chromium, "--screenshot="+shot, "--window-size=1100,1700", "file://"+report)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The legends' colour squares alone give ~700 such pixels in this window (a report
	// whose lines were all empty gave 700); drawn lines give over 2000.
	n := seriesPixels(img)
	t.Logf("pixels in the series' colours: %d", n)
	if n < 1200 {
		t.Errorf("the screenshot has %d pixels in the charts' series colours, about what the legends alone give: the charts look blank", n)
	}
	if *updateScreenshot {
		data, _ := os.ReadFile(shot)
		if err := os.WriteFile("../docs/img/loadtest-report.png", data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// seriesPixels counts pixels close to the colours the report draws its first series in
// (loadtest/report's palette): text and grid are black and grey, so these are lines.
func seriesPixels(img image.Image) int {
	colours := [][3]int{{0x1f, 0x77, 0xb4}, {0xd6, 0x27, 0x28}, {0x2c, 0xa0, 0x2c}, {0xff, 0x7f, 0x0e}, {0x94, 0x67, 0xbd}}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for _, c := range colours {
				if abs(int(r>>8)-c[0])+abs(int(g>>8)-c[1])+abs(int(bl>>8)-c[2]) < 40 {
					n++
					break
				}
			}
		}
	}
	return n
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
