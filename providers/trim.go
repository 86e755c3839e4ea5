package providers

import "unicode/utf8"

// Trim keeps the newest part of a conversation that fits in budget, counted
// in bytes of Text (a character count that is cheap and never undercounts
// what the vendor bills). It drops whole messages from the oldest end and
// returns a suffix of msgs, sharing its backing array. A budget of zero or
// less means no limit.
//
// The kept window never starts with an assistant turn unless that turn is
// the newest message: vendors such as Anthropic require the first message to
// be the user's, and a reply without its question is of little use anyway.
//
// The newest message is always kept. When it alone exceeds the budget, Trim
// returns just that message with its text cut to its last budget bytes (moved
// forward to a UTF-8 boundary, so it may come out a few bytes shorter): the
// end of a long message is what the model must answer. That is the only case
// in which the result is a fresh slice rather than a suffix of msgs.
func Trim(msgs []Message, budget int) []Message {
	n := len(msgs)
	if n == 0 || budget <= 0 {
		return dropLeadingAssistant(msgs)
	}
	last := msgs[n-1]
	if len(last.Text) > budget {
		cut := len(last.Text) - budget
		for cut < len(last.Text) && !utf8.RuneStart(last.Text[cut]) {
			cut++
		}
		return []Message{{Role: last.Role, Text: last.Text[cut:], Attachments: last.Attachments}}
	}
	used, start := 0, n
	for start > 0 && used+len(msgs[start-1].Text) <= budget {
		start--
		used += len(msgs[start].Text)
	}
	return dropLeadingAssistant(msgs[start:])
}

func dropLeadingAssistant(msgs []Message) []Message {
	for len(msgs) > 1 && msgs[0].Role == RoleAssistant {
		msgs = msgs[1:]
	}
	return msgs
}
