// A small CNI runtime for the tests: it drives a conflist through libcni, the CNI project's own library (Debian's
// golang-github-appc-cni-dev), as containerd and CRI-O do. Usage:
//
//	harness add|check|del|version CONFLIST_OR_PLUGIN NETNS CONTAINER_ID CNI_ARGS ANNOTATIONS_JSON [CAPABILITIES_JSON]
//	harness load CONF_DIR
//
// CAPABILITIES_JSON adds capability args (e.g. {"dns": {"nameservers": [...]}}), as containerd passes the pod's DNS.
// ANNOTATIONS_JSON may be @FILE: an argument over 128 KiB is more than exec takes (E2BIG), and annotations may be.
// ADD prints the final result; errors print the plugin's error and exit 1. load loads every config file of the
// directory in the runtime's order, as containerd's go-cni does (a .conflist as a list, any other as a single
// plugin made into a list), and prints one JSON line per file: the network's name and plugin types, or the error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintln(os.Stdout, err.Error())
	os.Exit(1)
}

// load prints what the runtime makes of each file of dir, in its order; the first that loads is the one it uses.
func load(dir string) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		fail(err)
	}
	sort.Strings(files)
	for _, file := range files {
		var list *libcni.NetworkConfigList
		if strings.HasSuffix(file, ".conflist") {
			list, err = libcni.ConfListFromFile(file)
		} else {
			var conf *libcni.NetworkConfig
			if conf, err = libcni.ConfFromFile(file); err == nil {
				list, err = libcni.ConfListFromConf(conf)
			}
		}
		line := map[string]interface{}{"file": filepath.Base(file)}
		if err != nil {
			line["error"] = err.Error()
		} else {
			types := []string{}
			for _, plugin := range list.Plugins {
				types = append(types, plugin.Network.Type)
			}
			line["network"], line["cniVersion"], line["types"] = list.Name, list.CNIVersion, types
		}
		out, _ := json.Marshal(line)
		fmt.Println(string(out))
	}
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "load" {
		load(os.Args[2])
		return
	}
	if len(os.Args) != 7 && len(os.Args) != 8 {
		fmt.Fprintln(os.Stderr, "usage: harness add|check|del|version CONFLIST NETNS CONTAINER_ID CNI_ARGS ANNOTATIONS_JSON [CAPABILITIES_JSON]")
		os.Exit(2)
	}
	command, conflist, netns, id, cniArgs, annotations := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	if command == "version" {
		info, err := cni.GetVersionInfo(ctx, conflist)
		if err != nil {
			fail(err)
		}
		out, _ := json.Marshal(info.SupportedVersions())
		fmt.Println(string(out))
		return
	}
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		fail(err)
	}
	var pairs [][2]string
	for _, kv := range strings.Split(cniArgs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			pairs = append(pairs, [2]string{k, v})
		}
	}
	if strings.HasPrefix(annotations, "@") {
		text, err := os.ReadFile(annotations[1:])
		if err != nil {
			fail(err)
		}
		annotations = string(text)
	}
	anno := map[string]string{}
	if err := json.Unmarshal([]byte(annotations), &anno); err != nil {
		fail(err)
	}
	capabilities := map[string]interface{}{}
	if len(os.Args) == 8 {
		if err := json.Unmarshal([]byte(os.Args[7]), &capabilities); err != nil {
			fail(err)
		}
	}
	capabilities["io.kubernetes.cri.pod-annotations"] = anno
	rt := &libcni.RuntimeConf{
		ContainerID:    id,
		NetNS:          netns,
		IfName:         "eth0",
		Args:           pairs,
		CapabilityArgs: capabilities,
	}
	switch command {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		out, _ := json.Marshal(result)
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", command)
		os.Exit(2)
	}
}
