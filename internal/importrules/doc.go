// Package importrules holds the test that keeps hearth's import rules true:
//
//	firmware-proto ← device ← edge ← sync ← cmd
//
// device/* never imports edge or sync; edge never imports sync; sync never imports
// device subpackages (only the device vocabulary); only edge/store imports bbolt; no
// package is named sync.
package importrules
