package safenet

// NewClientForTest exposes newClient with a custom address rule.
var NewClientForTest = newClient
