package config

import "testing"

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://db/x", "postgres://db/x"},
		{"postgres://cdc@db/x", "postgres://cdc@db/x"},
		{"postgres://cdc:secret@db:5432/x", "postgres://cdc:xxxxx@db:5432/x"},
		{"postgresql://cdc:secret@h1:5432,h2:5432/x?sslmode=require", "postgresql://cdc:xxxxx@h1:5432,h2:5432/x?sslmode=require"},
		{"postgres://:secret@db/x", "postgres://:xxxxx@db/x"},
		{"postgres://cdc:se%40cret@db/x", "postgres://cdc:xxxxx@db/x"},
		{"postgres://cdc:se@c:r/et@db/x", "postgres://cdc:xxxxx@db/x"}, // raw @, : and / in the password
		{"postgres://cdc:se?cr@et@db/x", "postgres://cdc:xxxxx@db/x"},  // raw ? in the password
		{"postgres://cdc:secret@db/x?application_name=a@b", "postgres://cdc:xxxxx@db/x?application_name=a@b"},
		{"postgres://db/x?user=cdc&password=secret&sslmode=disable", "postgres://db/x?user=cdc&password=xxxxx&sslmode=disable"},
		{"postgres://cdc:a@db/x?sslpassword=secret", "postgres://cdc:xxxxx@db/x?sslpassword=xxxxx"},
		{"host=db user=cdc", "host=db user=cdc"},
		{"host=db password=secret user=cdc", "host=db password=xxxxx user=cdc"},
		{"host=db password = secret", "host=db password = xxxxx"},
		{"host=db password='sec ret\\' x' user=cdc", "host=db password=xxxxx user=cdc"},
		{"host=db PASSWORD=secret", "host=db PASSWORD=xxxxx"},
		{"host=db sslpassword=secret", "host=db sslpassword=xxxxx"},
		{"host=db password='unterminated secret", "host=db password=xxxxx"},
		{"host=db password=", "host=db password=xxxxx"},
		{"host=db password", "host=db xxxxx"},
		{"host=db junk password=secret", "host=db xxxxx"},
		{"lots", "lots"},
		{"4 megs", "4 megs"},
		{"  host=db  ", "  host=db  "},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
