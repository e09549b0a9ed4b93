package layering

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// APIExceptions are exported declarations (package.Name) that still show an
// internal type, each with who removes it. There are none: keep it so.
var APIExceptions = map[string]string{}

// TestNoInternalTypesInAPI checks that no exported declaration of a public
// package (not internal/, not a command) mentions a type of an internal
// package: code outside the module could not name it.
func TestNoInternalTypesInAPI(t *testing.T) {
	r := root(t)
	found := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if path != r && (strings.HasPrefix(n, ".") || n == "testdata" || n == "internal" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil
		}
		rel, _ := filepath.Rel(r, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		internal := map[string]string{} // local name -> import path
		for _, is := range f.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if !strings.Contains(p, "/internal/") {
				continue
			}
			name := p[strings.LastIndex(p, "/")+1:]
			if is.Name != nil {
				name = is.Name.Name
			}
			internal[name] = p
		}
		if len(internal) == 0 {
			return nil
		}
		for _, decl := range f.Decls {
			for name, node := range exported(decl) {
				for _, use := range internalUses(node, internal) {
					key := pkg + "." + name
					found[key] = append(found[key], use)
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why := APIExceptions[k]; why != "" {
			t.Logf("tolerated: %s shows %v (%s)", k, found[k], why)
			continue
		}
		t.Errorf("exported %s shows internal type(s) %v", k, found[k])
	}
	for k, why := range APIExceptions {
		if _, ok := found[k]; !ok {
			t.Errorf("API exception %s (%s) is no longer needed: remove it", k, why)
		}
	}
}

// exported returns the exported parts of decl that form the API: function
// signatures (of functions and of methods of exported types), exported
// types (their exported fields and methods), and exported vars and consts.
func exported(decl ast.Decl) map[string]ast.Node {
	out := map[string]ast.Node{}
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			return nil
		}
		name := d.Name.Name
		if d.Recv != nil && len(d.Recv.List) == 1 {
			recv := receiverName(d.Recv.List[0].Type)
			if !ast.IsExported(recv) {
				return nil
			}
			name = recv
		}
		out[name] = d.Type
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				if s.Name.IsExported() {
					out[s.Name.Name] = exportedPart(s.Type)
				}
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.IsExported() && s.Type != nil {
						out[n.Name] = s.Type
					}
				}
			}
		}
	}
	return out
}

func receiverName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return receiverName(x.X)
	case *ast.IndexExpr:
		return receiverName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

// exportedPart drops the unexported fields of a struct type.
func exportedPart(e ast.Expr) ast.Node {
	st, ok := e.(*ast.StructType)
	if !ok {
		return e
	}
	fields := &ast.FieldList{}
	for _, f := range st.Fields.List {
		keep := len(f.Names) == 0 // embedded
		for _, n := range f.Names {
			keep = keep || n.IsExported()
		}
		if keep {
			fields.List = append(fields.List, f)
		}
	}
	return &ast.StructType{Fields: fields}
}

// internalUses returns the qualified identifiers in n that name a package
// of internal.
func internalUses(n ast.Node, internal map[string]string) []string {
	var uses []string
	ast.Inspect(n, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] != "" {
				uses = append(uses, id.Name+"."+sel.Sel.Name)
			}
		}
		return true
	})
	return uses
}
