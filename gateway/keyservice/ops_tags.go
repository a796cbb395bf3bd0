package keyservice

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

const maxTagsPerKey = 50

// validateTags checks AWS's tag rules and returns the tags as a map.
func validateTags(tags []Tag) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		if t.TagKey == nil {
			return nil, missing("tags.member.tagKey")
		}
		if t.TagValue == nil {
			return nil, missing("tags.member.tagValue")
		}
		k, v := *t.TagKey, *t.TagValue
		switch {
		case len(k) < 1:
			return nil, tooShort("tags.member.tagKey", k, 1)
		case len(k) > 128:
			return nil, tooLong("tags.member.tagKey", k, 128)
		case len(v) > 256:
			return nil, tooLong("tags.member.tagValue", v, 256)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, errorf(CodeTag, "Tag keys beginning with aws: are reserved for AWS use.")
		}
		out[k] = v
	}
	if len(out) > maxTagsPerKey {
		return nil, errorf(CodeLimitExceeded, "A key can have at most %d tags.", maxTagsPerKey)
	}
	return out, nil
}

// TagResourceInput is the AWS TagResource request.
type TagResourceInput struct {
	KeyId string `json:"KeyId"`
	Tags  []Tag  `json:"Tags"`
}

// TagResource adds or replaces tags on a key.
func (s *Service) TagResource(ctx context.Context, c Caller, in *TagResourceInput) (*struct{}, error) {
	return s.change(ctx, c, "TagResource", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if in.Tags == nil {
			return nil, missing("tags")
		}
		tags, err := validateTags(in.Tags)
		if err != nil {
			return nil, err
		}
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		n := len(k.Tags)
		for t := range tags {
			if _, ok := k.Tags[t]; !ok {
				n++
			}
		}
		if n > maxTagsPerKey {
			return nil, errorf(CodeLimitExceeded, "A key can have at most %d tags.", maxTagsPerKey)
		}
		return &event.KeyTagged{Tags: tags}, nil
	})
}

// UntagResourceInput is the AWS UntagResource request.
type UntagResourceInput struct {
	KeyId   string   `json:"KeyId"`
	TagKeys []string `json:"TagKeys"`
}

// UntagResource removes tags from a key; absent tag keys are ignored.
func (s *Service) UntagResource(ctx context.Context, c Caller, in *UntagResourceInput) (*struct{}, error) {
	return s.change(ctx, c, "UntagResource", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if in.TagKeys == nil {
			return nil, missing("tagKeys")
		}
		for _, t := range in.TagKeys {
			if len(t) < 1 || len(t) > 128 {
				return nil, lengthBetween("tagKeys", t, 1, 128)
			}
		}
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		return &event.KeyUntagged{TagKeys: in.TagKeys}, nil
	})
}

// ListResourceTagsInput and ListResourceTagsOutput are the AWS ListResourceTags
// members.
type (
	ListResourceTagsInput struct {
		KeyId  string `json:"KeyId"`
		Limit  *int32 `json:"Limit"`
		Marker string `json:"Marker"`
	}

	ListResourceTagsOutput struct {
		Tags       []Tag  `json:"Tags"`
		NextMarker string `json:"NextMarker,omitempty"`
		Truncated  bool   `json:"Truncated"`
	}
)

// ListResourceTags lists a key's tags in tag key order.
func (s *Service) ListResourceTags(ctx context.Context, c Caller, in *ListResourceTagsInput) (*ListResourceTagsOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListResourceTags")
	ev.Body = &event.APICall{Params: listParams(&ListInput{Limit: in.Limit, Marker: in.Marker})}
	k, err := s.use(c, in.KeyId, false, request{action: "kms:ListResourceTags"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	limit, err := limitOf(in.Limit, 50, 50)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	keys := sortedKeys(k.Tags)
	keys, next, err := page(keys, func(s string) string { return s }, in.Marker, limit)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	out := &ListResourceTagsOutput{Tags: []Tag{}, NextMarker: next, Truncated: next != ""}
	for _, t := range keys {
		v := k.Tags[t]
		out.Tags = append(out.Tags, Tag{TagKey: &t, TagValue: &v})
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
