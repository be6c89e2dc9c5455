"""The running server's configuration: project.toml and agents.toml, reloadable as a pair."""

from __future__ import annotations

from huskies.config import AgentConfig, AgentsConfig, ProjectConfig
from huskies.project import Project


class Settings:
    """The configuration in force. `reload` reads both files again and swaps them in only if
    both are valid; otherwise it raises `ConfigError` and the old pair stays in force, so a
    half-finished edit never reaches running agents."""

    def __init__(self, project: Project, config: ProjectConfig, agents: AgentsConfig) -> None:
        self.project = project
        self.config = config
        self.agents = agents

    @classmethod
    def load(cls, project: Project) -> Settings:
        return cls(project, project.config(), project.agents())

    def reload(self) -> None:
        config, agents = self.project.config(), self.project.agents()
        self.config, self.agents = config, agents

    def agent(self, name: str) -> AgentConfig | None:
        return next((agent for agent in self.agents.agents if agent.name == name), None)
