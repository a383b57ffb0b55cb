// File modes (UnixFileMode) are part of what these tests check.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
