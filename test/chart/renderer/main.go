// A test-only stand-in for `helm template`: no helm binary can be had on the test machines. It renders a chart
// with Go's text/template and the sprig function library (the engine and functions Helm uses), plus Helm's own
// functions the chart needs (include, tpl, required, toYaml, fromYaml, toJson, fromJson) and the .Values,
// .Release, .Chart and .Capabilities objects, with values.yaml overridden by -f files. It approximates Helm; it
// is not Helm. Output: one JSON object {"manifests": [{"name", "content"}], "notes"}; a template error (fail,
// required) is printed on stderr with exit status 1.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func readYAML(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	check(err)
	out := map[string]interface{}{}
	check(yaml.Unmarshal(data, &out))
	return out
}

// coalesce overrides defaults with user values as Helm does: maps merge key by key, a null deletes the key.
func coalesce(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sub, isMap := v.(map[string]interface{})
		old, wasMap := dst[k].(map[string]interface{})
		if isMap && wasMap {
			coalesce(old, sub)
		} else {
			dst[k] = v
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	var valueFiles files
	chart := flag.String("chart", "", "chart directory")
	namespace := flag.String("namespace", "default", "release namespace")
	release := flag.String("release", "release", "release name")
	flag.Var(&valueFiles, "f", "values file (repeatable)")
	flag.Parse()

	values := readYAML(filepath.Join(*chart, "values.yaml"))
	for _, f := range valueFiles {
		coalesce(values, readYAML(f))
	}
	meta := readYAML(filepath.Join(*chart, "Chart.yaml"))
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   map[string]interface{}{"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
		"Release": map[string]interface{}{"Name": *release, "Namespace": *namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.29.0", "Major": "1", "Minor": "29"},
		},
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	// Helm removes these two for safety; so does this stand-in.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = func(v interface{}) string {
		out, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	funcs["toJson"] = func(v interface{}) string { out, _ := json.Marshal(v); return string(out) }
	funcs["fromJson"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		_ = json.Unmarshal([]byte(s), &out)
		return out
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	root.Funcs(funcs)

	dir := filepath.Join(*chart, "templates")
	entries, err := os.ReadDir(dir)
	check(err)
	var names []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		check(err)
		name := filepath.Join(meta["name"].(string), "templates", e.Name())
		_, err = root.New(name).Parse(string(data))
		check(err)
		names = append(names, name)
	}
	sort.Strings(names)

	type manifest struct {
		Name    string `json:"name"`
		Content string `json:"content"`
	}
	out := struct {
		Manifests []manifest `json:"manifests"`
		Notes     string     `json:"notes"`
	}{Manifests: []manifest{}}
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		var buf bytes.Buffer
		check(root.ExecuteTemplate(&buf, name, top))
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			out.Notes = text
		} else if strings.TrimSpace(text) != "" {
			out.Manifests = append(out.Manifests, manifest{Name: name, Content: text})
		}
	}
	encoded, err := json.Marshal(out)
	check(err)
	fmt.Println(string(encoded))
}
