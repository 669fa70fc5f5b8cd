public enum TemplatesModule {}
