package conf

import "testing"

func TestKeyLines(t *testing.T) {
	src := `# comment = 1
a = 1 # b = 2
s = """
c = "not a key"
"""
t = '''
d = 3 '''
e = "x \" f = 4"
list = [
  "one",   # g = 5
  'two',
]
"quoted key" = 1
h.i = 2

[table]
j = 1
[[arr]]
k = 1
[[arr]]
  k = 2
[ arr2 . "sub" ]
l = 1
`
	kl := scanKeyLines(src)
	for key, want := range map[string]int{
		"a": 2, "s": 3, "t": 6, "e": 8, "list": 9, "quoted key": 13, "h.i": 14,
		"table": 16, "table.j": 17, "arr[0]": 18, "arr[0].k": 19, "arr[1]": 20, "arr[1].k": 21,
		"arr.k": 19, "arr[1].missing": 20, "arr[5].k": 18, "arr2.sub.l": 23,
		"list[1]": 9, "b": 0, "c": 0, "d": 0, "f": 0, "g": 0, "comment": 0,
		"x]": 0, "\b].": 0, "a.x]": 2, // quoted keys with a "]" that closes no index
	} {
		if got := kl.line(key); got != want {
			t.Errorf("line(%q) = %d, want %d", key, got, want)
		}
	}
	if got := kl.elemLine(9, "two"); got != 11 {
		t.Errorf("elemLine(9, two) = %d, want 11", got)
	}
	if got := kl.elemLine(9, "absent"); got != 9 {
		t.Errorf("elemLine(9, absent) = %d, want 9", got)
	}
}
