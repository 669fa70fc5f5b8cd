public enum StewardCLI {}
