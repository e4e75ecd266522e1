package importer

import "testing"

func TestCountryCode(t *testing.T) {
	for name, want := range map[string]string{
		"United States": "US", "united states": "US", "  France ": "FR", "fr": "FR", "US": "US",
		"Britain (UK)": "GB", "United Kingdom": "GB", "South Korea": "KR", "Korea (South)": "KR",
		"Côte d'Ivoire": "CI", "Cote d'Ivoire": "CI", "Bosnia and Herzegovina": "BA", "Bosnia & Herzegovina": "BA",
		"Saint Lucia": "LC", "St Lucia": "LC", "Russia": "RU", "Hashemite Kingdom of Jordan": "JO",
		"Congo (Dem. Rep.)": "CD", "Democratic Republic of the Congo": "CD", "Congo": "CG", "Samoa": "WS",
		"The Bahamas": "BS", "Curaçao": "CW", "Réunion": "RE",
		"": "", "Atlantis": "", "1A": "", "United": "",
	} {
		if got := CountryCode(name); got != want {
			t.Errorf("CountryCode(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestCountryNamesAgree checks that no two names of the table fold to the
// same key with different codes, and that every code has a name.
func TestCountryNamesAgree(t *testing.T) {
	byKey := map[string]string{}
	codes := map[string]bool{}
	for _, c := range countryNames {
		k := countryKey(c.name)
		if prev, ok := byKey[k]; ok && prev != c.code {
			t.Errorf("%q folds to %q, which is %s and %s", c.name, k, prev, c.code)
		}
		byKey[k] = c.code
		if len(c.code) != 2 || !isLetter(c.code[0]) || !isLetter(c.code[1]) {
			t.Errorf("%q: code %q", c.name, c.code)
		}
		codes[c.code] = true
	}
	if len(codes) != 249 {
		t.Errorf("%d country codes, want the 249 of ISO 3166-1", len(codes))
	}
}
