package kruise

import (
	"github.com/docker/distribution/reference"
)

// NameTag splits an image the way Kruise keys it in NodeImages: the familiar
// repository name ("nginx", "127.0.0.1:5000/app") and the tag, "latest" when
// none is given. Kruise's daemonutil.NormalizeImageRefToNameTag does the same.
func NameTag(image string) (name, tag string, err error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", "", err
	}
	named = reference.TagNameOnly(named)
	if tagged, ok := named.(reference.Tagged); ok {
		tag = tagged.Tag()
	}
	return reference.FamiliarName(named), tag, nil
}
