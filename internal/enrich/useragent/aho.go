package useragent

// acMatcher is an Aho–Corasick automaton over byte strings: one pass over
// a text reports every pattern that occurs in it. Transitions are a dense
// table over byte classes (bytes that occur in no pattern share class 0),
// so a step is two loads.
type acMatcher struct {
	class    [256]uint8
	nclass   int
	next     []int32 // next[state*nclass+class]
	out      []int32 // pattern ending at state, or -1
	dict     []int32 // nearest proper-suffix state with out >= 0, or -1
	hasOut   []bool  // out >= 0 or dict >= 0
	patterns int
}

// newACMatcher builds the automaton for pats, which must have no ASCII
// uppercase letters; pattern i is reported as i. Empty patterns are never
// reported. The automaton reads ASCII uppercase letters as lowercase, so
// scanning s finds what scanning its ASCII-lowercased copy would.
func newACMatcher(pats []string) *acMatcher {
	m := &acMatcher{patterns: len(pats)}
	var used [256]bool
	for _, p := range pats {
		for i := 0; i < len(p); i++ {
			used[p[i]] = true
		}
	}
	m.nclass = 1
	for b := range 256 {
		if used[b] && !('A' <= b && b <= 'Z') {
			if m.nclass == 256 {
				// Every byte but uppercase is used: identity classes.
				m.nclass = 0
				break
			}
			m.class[b] = uint8(m.nclass)
			m.nclass++
		}
	}
	if m.nclass == 0 {
		m.nclass = 256
		for b := range 256 {
			m.class[b] = uint8(b)
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		m.class[b] = m.class[b+'a'-'A']
	}
	nc := m.nclass
	// Trie; next holds -1 for missing edges until the BFS fills them in.
	newState := func() int32 {
		for range nc {
			m.next = append(m.next, -1)
		}
		m.out = append(m.out, -1)
		return int32(len(m.out) - 1)
	}
	newState()
	for i, p := range pats {
		if p == "" {
			continue
		}
		s := int32(0)
		for j := 0; j < len(p); j++ {
			c := int(m.class[p[j]])
			if m.next[int(s)*nc+c] < 0 {
				t := newState()
				m.next[int(s)*nc+c] = t
			}
			s = m.next[int(s)*nc+c]
		}
		if m.out[s] < 0 {
			m.out[s] = int32(i)
		}
	}
	n := len(m.out)
	fail := make([]int32, n)
	m.dict = make([]int32, n)
	m.hasOut = make([]bool, n)
	queue := make([]int32, 0, n)
	for c := range nc {
		t := m.next[c]
		if t < 0 {
			m.next[c] = 0
			continue
		}
		fail[t] = 0
		queue = append(queue, t)
	}
	m.dict[0] = -1
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := fail[s]
		if m.out[f] >= 0 {
			m.dict[s] = f
		} else {
			m.dict[s] = m.dict[f]
		}
		m.hasOut[s] = m.out[s] >= 0 || m.dict[s] >= 0
		for c := range nc {
			t := m.next[int(s)*nc+c]
			if t < 0 {
				m.next[int(s)*nc+c] = m.next[int(f)*nc+c]
				continue
			}
			fail[t] = m.next[int(f)*nc+c]
			queue = append(queue, t)
		}
	}
	return m
}

// scan calls report for every occurrence of a pattern in text, in order of
// the occurrence's end.
func (m *acMatcher) scan(text string, report func(pat int32, end int)) {
	s := int32(0)
	nc := int32(m.nclass)
	for i := 0; i < len(text); i++ {
		s = m.next[s*nc+int32(m.class[text[i]])]
		if !m.hasOut[s] {
			continue
		}
		t := s
		if m.out[t] < 0 {
			t = m.dict[t]
		}
		for t >= 0 {
			report(m.out[t], i+1)
			t = m.dict[t]
		}
	}
}
