package importer

import "strings"

// countryCodes are countryNames by their normalised name.
var countryCodes = func() map[string]string {
	m := make(map[string]string, len(countryNames))
	for _, c := range countryNames {
		m[countryKey(c.name)] = c.code
	}
	return m
}()

// CountryCode returns the ISO 3166-1 alpha-2 code of a country a vendor
// names in English ("United States", "South Korea", "Britain (UK)",
// "Côte d'Ivoire"), or of a two-letter code, in upper case; "" when the
// name is not known. Case, accents, punctuation and "&" for "and" do not
// matter.
func CountryCode(name string) string {
	name = strings.TrimSpace(name)
	if len(name) == 2 && isLetter(name[0]) && isLetter(name[1]) {
		return strings.ToUpper(name)
	}
	if len(name) > 80 {
		return ""
	}
	return countryCodes[countryKey(name)]
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// foldAccents are the accented letters country names use.
var foldAccents = strings.NewReplacer("é", "e", "è", "e", "ç", "c", "ô", "o", "å", "a", "ü", "u", "ã", "a", "í", "i")

// countryKey lower-cases a name, folds accents, reads "&" as "and" and
// "St" as "Saint", and keeps letters only, one space apart.
func countryKey(s string) string {
	s = foldAccents.Replace(strings.ToLower(s))
	var words []string
	for w := range strings.FieldsFuncSeq(strings.ReplaceAll(s, "&", " and "), func(r rune) bool { return r < 'a' || r > 'z' }) {
		if w == "st" {
			w = "saint"
		}
		words = append(words, w)
	}
	if len(words) > 0 && words[0] == "the" {
		words = words[1:]
	}
	return strings.Join(words, " ")
}
