package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"veil/shard"
)

// writeFiles makes the files and directories of spec under root: a name
// ending in "/" is a directory, else a file holding its value.
func writeFiles(t testing.TB, root string, spec map[string]string) {
	t.Helper()
	for name, body := range spec {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// packTree is the archive share sends for root.
func packTree(t *testing.T, root string) []byte {
	t.Helper()
	entries, err := scanTree(root)
	if err != nil {
		t.Fatal(err)
	}
	size, err := treeSize(entries)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeTree(&b, entries, openEntry); err != nil {
		t.Fatal(err)
	}
	if int64(b.Len()) != size {
		t.Fatalf("archive of %d bytes, treeSize said %d", b.Len(), size)
	}
	return b.Bytes()
}

// readTree lists every file and directory under root as writeFiles takes
// them.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			got[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got[rel] = string(b)
		return nil
	})
	return got
}

func TestTreeRoundTrip(t *testing.T) {
	spec := map[string]string{
		"a.txt": "alpha", "empty": "", "sub/": "", "sub/b.bin": strings.Repeat("b", 70000),
		"sub/deeper/c": "c", "void/": "", "名前.txt": "utf-8", strings.Repeat("long/", 30) + "x": "deep",
	}
	src := t.TempDir()
	writeFiles(t, src, spec)
	os.Chmod(filepath.Join(src, "a.txt"), 0o755)
	archive := packTree(t, src)
	if again := packTree(t, src); !bytes.Equal(again, archive) {
		t.Fatal("packing the same tree twice gave different archives")
	}
	dst := filepath.Join(t.TempDir(), "out")
	os.Mkdir(dst, 0o700)
	if err := extractTree(bytes.NewReader(archive), dst); err != nil {
		t.Fatal(err)
	}
	got := readTree(t, dst)
	for name := range spec {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			spec[d+"/"] = ""
		}
	}
	if len(got) != len(spec) {
		t.Fatalf("extracted %d entries, want %d: %v", len(got), len(spec), got)
	}
	for name, body := range spec {
		if got[name] != body {
			t.Fatalf("%s: %d bytes, want %d", name, len(got[name]), len(body))
		}
	}
	if st, _ := os.Stat(filepath.Join(dst, "a.txt")); st.Mode().Perm()&0o100 == 0 {
		t.Fatal("the executable bit was lost")
	}
}

// TestTreeShareRefusesSpecialFiles: a symbolic link (or a device, a pipe)
// in a shared directory is refused by name, not followed.
func TestTreeShareRefusesSpecialFiles(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"ok": "x"})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	_, err := scanTree(src)
	if err == nil || !strings.Contains(err.Error(), "link is a symbolic link") {
		t.Fatalf("scan of a tree with a symlink: %v", err)
	}
}

// hostileArchive is a tar of the given headers, each file holding "pwned".
func hostileArchive(t testing.TB, headers ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range headers {
		if h.Typeflag == tar.TypeReg {
			h.Size = 5
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, "pwned")
		}
	}
	tw.Close()
	return b.Bytes()
}

// TestAttackHostileTree: a sharer packs an archive to write outside the
// fetcher's directory, or to plant a link or a device; extraction refuses
// each, and nothing appears outside the directory it extracts into.
func TestAttackHostileTree(t *testing.T) {
	dir := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755} }
	file := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644} }
	for name, headers := range map[string][]*tar.Header{
		"parent":             {file("../escaped")},
		"parent inside":      {dir("a/"), file("a/../../escaped")},
		"absolute":           {file("/tmp/escaped")},
		"symlink":            {{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/"}},
		"symlink then":       {{Typeflag: tar.TypeSymlink, Name: "l", Linkname: ".."}, file("l/escaped")},
		"hard link":          {{Typeflag: tar.TypeLink, Name: "h", Linkname: "/etc/passwd"}},
		"device":             {{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}},
		"fifo":               {{Typeflag: tar.TypeFifo, Name: "fifo"}},
		"no parent":          {file("nodir/escaped")},
		"twice":              {file("x"), file("x")},
		"dot":                {file("./x")},
		"control":            {file("a\x1b[2Jb")},
		"backslash":          {file(`..\escaped`)},
		"file as parent":     {file("f"), file("f/escaped")},
		"long path":          {file(strings.Repeat("a/", treeMaxPath) + "x")},
		"empty name":         {file("")},
		"dir over a file":    {file("x"), dir("x/")},
		"extended attribute": {{Typeflag: tar.TypeReg, Name: "x", Mode: 0o644, Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.user.x": "y"}}},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "out")
			os.Mkdir(dst, 0o700)
			err := extractTree(bytes.NewReader(hostileArchive(t, headers...)), dst)
			if err == nil {
				t.Fatal("a hostile archive was extracted")
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Fatalf("%v beside the extraction directory", entries)
			}
			if _, err := os.Lstat("/tmp/escaped"); err == nil {
				t.Fatal("/tmp/escaped was written")
			}
			for p := range readTree(t, dst) {
				if strings.Contains(p, "escaped") {
					t.Fatalf("%s written", p)
				}
			}
		})
	}
}

// ustarBlock is one raw tar header block: archive/tar will not write the
// PAX records of a GNU sparse file, which a hostile sharer writes by hand.
func ustarBlock(name string, typeflag byte, size int) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// sparseBomb is a tar of a few blocks whose one file, in PAX sparse
// format 1.0, is a hole of a terabyte: archive/tar reads it as that many
// zeros.
func sparseBomb() []byte {
	var records string
	for _, kv := range []string{"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=zeros", "GNU.sparse.realsize=1000000000000"} {
		n := len(kv) + 3
		for len(fmt.Sprintf("%d %s\n", n, kv)) != n {
			n++
		}
		records += fmt.Sprintf("%d %s\n", n, kv)
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	var out []byte
	out = append(out, ustarBlock("PaxHeaders/zeros", 'x', len(records))...)
	out = append(out, pad([]byte(records))...)
	out = append(out, ustarBlock("zeros", '0', 512)...)
	out = append(out, pad([]byte("1\n0\n0\n"))...)
	return append(out, make([]byte, 1024)...)
}

// TestAttackSparseBomb: the sparse file would extract to a terabyte of
// zeros; its PAX records are refused before a byte is written.
func TestAttackSparseBomb(t *testing.T) {
	h, err := tar.NewReader(bytes.NewReader(sparseBomb())).Next()
	if err != nil || h.Size != 1e12 {
		t.Fatalf("the bomb does not parse as a terabyte: %v, %+v", err, h)
	}
	dst := t.TempDir()
	err = extractTree(bytes.NewReader(sparseBomb()), dst)
	if err == nil || !strings.Contains(err.Error(), "GNU.sparse") {
		t.Fatalf("sparse bomb: %v", err)
	}
	dirHolds(t, dst)
}

// TestOutputPathRefusesHostileNames: a name from a manifest becomes one
// element inside the target directory, or nothing.
func TestOutputPathRefusesHostileNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"..", ".", "../x", "a/b", "/etc/passwd", "x\x00y", "\x1b[2J", strings.Repeat("n", shard.MaxNameLen+1)} {
		if got, err := outputPath("", shard.Meta{Name: name}); err == nil {
			t.Errorf("name %q gave the path %q", name, got)
		}
		if got, err := outputPath(dir, shard.Meta{Name: name}); err == nil {
			t.Errorf("name %q in -o DIR gave the path %q", name, got)
		}
	}
	if got, err := outputPath(dir, shard.Meta{Name: "ok.txt"}); err != nil || got != filepath.Join(dir, "ok.txt") {
		t.Fatalf("ok.txt in -o DIR: %q, %v", got, err)
	}
	link := filepath.Join(t.TempDir(), "downloads")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if got, err := outputPath(link, shard.Meta{Name: "ok.txt"}); err != nil || got != filepath.Join(link, "ok.txt") {
		t.Fatalf("ok.txt in -o LINK-TO-DIR: %q, %v", got, err)
	}
	if got, err := outputPath("", shard.Meta{Name: "ok.txt"}); err != nil || got != "ok.txt" {
		t.Fatalf("ok.txt: %q, %v", got, err)
	}
	if _, err := outputPath("", shard.Meta{}); err == nil || !strings.Contains(err.Error(), "no name") {
		t.Fatalf("no name and no -o: %v", err)
	}
}

// TestStalePartTreesRemoved: a fetch killed while it extracted a tree
// leaves its temporary file and directory; the next fetch to the same
// path removes both, but never a running fetch's (its file is locked).
func TestStalePartTreesRemoved(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "holiday")
	stale := filepath.Join(dir, partPrefix(out)+"123")
	writeFiles(t, dir, map[string]string{filepath.Base(stale): "tar", filepath.Base(stale) + treeSuffix + "/x": "x"})
	orphan := filepath.Join(dir, partPrefix(out)+"456"+treeSuffix)
	writeFiles(t, dir, map[string]string{filepath.Base(orphan) + "/y": "y"})
	running, err := createPart(out)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	writeFiles(t, dir, map[string]string{filepath.Base(running.Name()) + treeSuffix + "/z": "z"})
	removeStaleParts(out)
	dirHolds(t, dir, filepath.Base(running.Name()), filepath.Base(running.Name())+treeSuffix)
}

// FuzzExtractTree feeds extraction what a hostile sharer could send: it
// must never panic nor write beside its directory, and a tree it accepts
// packs again into an archive that extracts to the same tree.
func FuzzExtractTree(f *testing.F) {
	src := f.TempDir()
	writeFiles(f, src, map[string]string{"a": "x", "d/": "", "d/b": "yy", "e/": ""})
	entries, _ := scanTree(src)
	var good bytes.Buffer
	writeTree(&good, entries, openEntry)
	f.Add(good.Bytes())                                                                                                                 // valid: a packed tree
	f.Add([]byte{})                                                                                                                     // valid: nothing, an empty directory
	f.Add(hostileArchive(f, &tar.Header{Typeflag: tar.TypeReg, Name: "../up", Mode: 0o644}))                                            // invalid: climbs out
	f.Add(hostileArchive(f, &tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/"}))                                          // invalid: a link
	f.Add(hostileArchive(f, &tar.Header{Typeflag: tar.TypeReg, Name: "x", Mode: 0o644}, &tar.Header{Typeflag: tar.TypeReg, Name: "x"})) // invalid: twice
	f.Add(good.Bytes()[:700])                                                                                                           // invalid: truncated inside a file
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "out")
		if err := os.Mkdir(dst, 0o700); err != nil {
			t.Fatal(err)
		}
		err := extractTree(bytes.NewReader(b), dst)
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Fatalf("%v beside the extraction directory", entries)
		}
		if err != nil {
			return
		}
		first := readTree(t, dst)
		entries, err := scanTree(dst)
		if err != nil {
			t.Fatalf("an extracted tree does not pack: %v", err)
		}
		var again bytes.Buffer
		if err := writeTree(&again, entries, openEntry); err != nil {
			t.Fatal(err)
		}
		dst2 := filepath.Join(parent, "again")
		os.Mkdir(dst2, 0o700)
		if err := extractTree(&again, dst2); err != nil {
			t.Fatalf("a packed tree does not extract: %v", err)
		}
		second := readTree(t, dst2)
		if len(first) != len(second) {
			t.Fatalf("%d entries, then %d", len(first), len(second))
		}
		for k, v := range first {
			if second[k] != v {
				t.Fatalf("%s differs after packing again", k)
			}
		}
	})
}
