"""A training script written for wandb, in the shape of wandb's PyTorch examples (argparse, ``wandb.init(config=
args)``, ``wandb.watch``, a log every few batches, a validation log per epoch with ``define_metric``, a summary).

Written for flexlogger's tests (no third-party script could be kept here; see tests/test_scripts.py). The tests run
a copy whose ``import wandb`` line is replaced, and nothing else.
"""

# ruff: noqa: N812 - written as users write training scripts (`import torch.nn.functional as F`)
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import wandb
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def get_loaders(batch_size):
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    train = TensorDataset(x[:1400], y[:1400])
    test = TensorDataset(x[1400:], y[1400:])
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(test, batch_size=256))


def train(model, loader, optimizer, epoch, args):
    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            acc = (output.argmax(1) == target).float().mean().item()
            wandb.log({"train/loss": loss.item(), "train/acc": acc, "lr": optimizer.param_groups[0]["lr"]})
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(loader.dataset)}]\t"
                  f"Loss: {loss.item():.6f}\tAcc: {acc:.4f}")
        if args.max_batches and batch_idx + 1 >= args.max_batches:
            break


def test(model, loader, epoch):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            loss += F.cross_entropy(output, target, reduction="sum").item()
            correct += (output.argmax(1) == target).sum().item()
    loss /= len(loader.dataset)
    acc = correct / len(loader.dataset)
    wandb.log({"val/loss": loss, "val/acc": acc, "epoch": epoch})
    print(f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{len(loader.dataset)} ({100.0 * acc:.2f}%)")
    return acc


def main():
    parser = argparse.ArgumentParser(description="digits classifier")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--log-interval", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=0)
    parser.add_argument("--project", default="digits-wandb")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    wandb.init(project=args.project, config=args)
    config = wandb.config
    train_loader, test_loader = get_loaders(config.batch_size)
    model = Net(config.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    wandb.watch(model, log="all", log_freq=10)
    wandb.define_metric("epoch")
    wandb.define_metric("val/*", step_metric="epoch")

    best = 0.0
    for epoch in range(1, config.epochs + 1):
        train(model, train_loader, optimizer, epoch, args)
        best = max(best, test(model, test_loader, epoch))
        scheduler.step()
    wandb.summary["best_acc"] = best
    print(f"Best accuracy: {best:.4f}")
    wandb.finish()


if __name__ == "__main__":
    main()
